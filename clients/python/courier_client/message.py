"""What the app gets: a :class:`Message` per stored message, and the small records
the client's events carry."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .client import CourierClient


class State(StrEnum):
    DISCONNECTED = "disconnected"
    CONNECTING = "connecting"
    CONNECTED = "connected"


@dataclass(frozen=True, slots=True)
class Disconnected:
    """A connection ended (or could not be made): the close code and reason (1006: no
    close frame, or no connection at all), and whether the client will reconnect."""

    code: int
    reason: str
    reconnect: bool


@dataclass(frozen=True, slots=True)
class ClientEvent:
    """Something went wrong but the client goes on: ``kind`` is ``server`` (an
    ``error`` frame: ``code`` and ``detail`` are the server's), ``token`` (get_token
    failed), ``transport`` (a connect failed), ``refresh`` or ``handler`` (an event
    handler raised)."""

    kind: str
    code: str
    detail: str
    frame: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class Message:
    """A ``message`` frame. Auto mode acks it once you ask for the next message;
    manual mode (``ack="manual"``) leaves it to :meth:`ack`."""

    id: str
    priority: str
    payload: Any
    created_at: str
    attempt: int
    topic: str | None
    collapse_key: str | None
    reply_requested: bool
    frame: dict[str, Any] = field(repr=False)
    _client: CourierClient = field(repr=False, compare=False)

    @classmethod
    def of(cls, frame: dict[str, Any], client: CourierClient) -> Message:
        return cls(
            id=frame["id"],
            priority=frame.get("priority", "normal"),
            payload=frame.get("payload"),
            created_at=frame.get("created_at", ""),
            attempt=int(frame.get("attempt", 1)),
            topic=frame.get("topic"),
            collapse_key=frame.get("collapse_key"),
            reply_requested=bool(frame.get("reply_requested", False)),
            frame=frame,
            _client=client,
        )

    def ack(self) -> None:
        """Acknowledge it (sent within ``ack_delay``, batched with others)."""
        self._client.ack(self.id)

    async def reply(self, data: Any) -> None:
        """Answer a message that has ``reply_requested`` (the producer's ``request``)."""
        await self._client.reply(self.id, data)
