"""Meeting assistant: the summary goes to every participant (one message id each),
to all their devices at once; those offline get it when they connect; urgent notices
jump the queue; everybody online gets the system notice right now.

Run Courier (./scripts/serve), then: .venv/bin/python examples/meeting_assistant.py
"""

import asyncio

from api.runtime import load_settings
from delivery.producer import Producer


async def main() -> None:
    producer = Producer.from_settings(load_settings())
    participants = ["alice", "bob", "carol"]
    summary = await producer.submit(
        {
            "recipients": participants,
            "payload": {"kind": "summary", "meeting": "standup", "text": "ship on Friday"},
            "ttl_seconds": 86400,
        }
    )
    for a in summary:
        print(f"summary for {a.user_id}: {a.id} ({a.status})")
    urgent = await producer.send(
        "carol", {"kind": "urgent", "text": "moved to 3 pm"}, priority="high"
    )
    print(f"urgent for carol: {urgent.id}")
    await producer.aclose()
    # The delivery status of each recipient: `courier status <id>`, or
    # GET /v1/messages/<id> and GET /v1/users/<user>/messages with an admin token.


if __name__ == "__main__":
    asyncio.run(main())
    # Broadcast to everyone online (live, best effort) goes through the HTTP API:
    #   curl -X POST localhost:8000/v1/broadcast \
    #     -H "Authorization: Bearer $(courier token ops --role service)" \
    #     -d '{"payload": {"text": "maintenance at 22:00"}, "system": true}'
