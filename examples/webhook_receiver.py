"""A webhook receiver for Courier's events: "in-app first, then mobile push".

Courier tries the app first (WebSocket). A message sent with
``escalate_after_seconds=60`` that no device acked within a minute fires an
``undelivered`` event: this receiver then sends a mobile push (here: a log line and a
list; put your FCM/APNs call in ``send_push``). The message stays deliverable: when the
app connects later it still gets it, and ``delivered`` arrives here too.

Every request is checked as the Standard Webhooks spec says (``pip install
standardwebhooks``): a bad signature or a stale timestamp answers 400. Courier sends an
event again until it gets a 2xx (and after a timeout), so the receiver drops repeats by
the ``webhook-id`` header; this one keeps the ids in memory (use Redis ``SET NX EX`` or
a unique column when several receivers run).

Run::

    courier webhooks add app http://127.0.0.1:9000/courier --events delivered,undelivered
    # it prints the endpoint's secret (shown once): give it to the receiver
    COURIER_WEBHOOK_SECRET=whsec_... .venv/bin/uvicorn --port 9000 \
        --factory examples.webhook_receiver:from_env
    # then a message with escalate_after_seconds for a user who is offline:
    curl -X POST localhost:8000/v1/messages -H "Authorization: Bearer $SERVICE_TOKEN" \
        -d '{"user_id": "alice", "payload": {"text": "standup"}, "escalate_after_seconds": 60}'
"""

from __future__ import annotations

import logging
import os
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI, Request, Response
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

log = logging.getLogger("webhook_receiver")

Push = Callable[[str, str, dict[str, Any]], Awaitable[None]]


async def send_push(user_id: str, message_id: str, event: dict[str, Any]) -> None:
    """Your mobile push (FCM, APNs, e-mail ...)."""
    log.info("push to %s: message %s was not seen in the app", user_id, message_id)


class Seen:
    """The last ``size`` webhook ids, to drop repeats."""

    def __init__(self, size: int = 100_000) -> None:
        self.ids: OrderedDict[str, None] = OrderedDict()
        self.size = size

    def first_time(self, webhook_id: str) -> bool:
        if webhook_id in self.ids:
            return False
        self.ids[webhook_id] = None
        if len(self.ids) > self.size:
            self.ids.popitem(last=False)
        return True


def create_app(secret: str, push: Push = send_push) -> FastAPI:
    app = FastAPI(title="Courier webhook receiver (example)")
    hook = Webhook(secret)
    seen = Seen()
    app.state.pushed = []  # (user, message id) of every push, for a look at /state
    app.state.delivered = []  # message ids the app confirmed

    @app.post("/courier")
    async def courier(request: Request) -> Response:
        body = await request.body()
        try:
            event = hook.verify(body, dict(request.headers))
        except WebhookVerificationError as e:
            log.warning("refused a webhook: %s", e)
            return Response(status_code=400)
        if not seen.first_time(request.headers["webhook-id"]):
            return Response(status_code=204)  # a repeat: handled already
        data = event["data"]
        if event["type"] == "undelivered":
            await push(data["user_id"], data["message_id"], event)
            app.state.pushed.append((data["user_id"], data["message_id"]))
        elif event["type"] == "delivered":
            app.state.delivered.append(data["message_id"])
        return Response(status_code=204)

    @app.get("/state")
    async def state() -> dict[str, Any]:
        return {"pushed": app.state.pushed, "delivered": app.state.delivered}

    return app


def from_env() -> FastAPI:
    """For ``uvicorn --factory``: the secret from COURIER_WEBHOOK_SECRET."""
    logging.basicConfig(level=logging.INFO)
    return create_app(os.environ["COURIER_WEBHOOK_SECRET"])
