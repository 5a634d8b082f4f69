"""Courier's Python client: messages as an async iterator, acked for you, with
reconnects (exponential backoff, full jitter), heartbeats, dedupe by id, topics
resubscribed after reconnects, replies, cancels and token refresh. See
docs/clients.md, "Python client".

    from courier_client import CourierClient

    async with CourierClient("ws://127.0.0.1:8000/v1/ws", get_token=fetch_token) as client:
        async for msg in client.messages():
            print(msg.id, msg.payload)

It needs only ``websockets``; it does not import the server's packages.
"""

from .backoff import Backoff, full_jitter
from .client import CourierClient
from .dedupe import SeenIds
from .errors import ClientClosed, CourierClientError, Forbidden, NoToken, Refused, Unauthorized
from .events import EVENTS
from .message import ClientEvent, Disconnected, Message, State

__all__ = [
    "EVENTS",
    "Backoff",
    "ClientClosed",
    "ClientEvent",
    "CourierClient",
    "CourierClientError",
    "Disconnected",
    "Forbidden",
    "Message",
    "NoToken",
    "Refused",
    "SeenIds",
    "State",
    "Unauthorized",
    "full_jitter",
]
