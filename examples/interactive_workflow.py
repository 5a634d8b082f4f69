"""Interactive workflow: a pipeline step asks the user "proceed?" and waits for the
answer (timeout and default), and stops when the user cancels the task from the browser.

The browser answers a message that has "reply_requested": true with
    {"type": "reply", "id": "<message id>", "data": "yes"}
and cancels with
    {"type": "cancel", "task_id": "import-7"}

Run Courier (./scripts/serve), connect a client as alice, then:
    .venv/bin/python examples/interactive_workflow.py alice
"""

import asyncio
import sys

from api.runtime import load_settings
from delivery.producer import Producer


async def import_rows(producer: Producer, user: str) -> None:
    answer = await producer.request(
        user,
        {"question": "Import 12,000 rows into production?", "choices": ["yes", "no"]},
        timeout=60,  # seconds; the user may answer from any device, even after reconnecting
        default="no",  # what the pipeline does when nobody answers
    )
    if answer != "yes":
        print("not importing:", answer)
        return
    # A cancel frame from the user's browser cancels this block: the task is
    # reported `cancelled` and the code after the block runs.
    async with producer.task("import-7", user_id=user, total=120) as task:
        for _ in range(120):
            await asyncio.sleep(0.5)  # ... import a batch ...
            await task.increment()
    print("import finished or cancelled")


async def main(user: str) -> None:
    producer = Producer.from_settings(load_settings())
    await import_rows(producer, user)
    await producer.aclose()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1] if len(sys.argv) > 1 else "alice"))
