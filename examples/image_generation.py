"""Image generation: jobs in a thread pool report progress at every step. Courier
keeps only the latest progress for a user who is offline (collapse key task:<id>),
never drops "completed", and a reconnecting client catches up.

Run Courier (./scripts/serve), then: .venv/bin/python examples/image_generation.py alice
"""

import sys
from concurrent.futures import ThreadPoolExecutor

from api.runtime import load_settings
from delivery.producer import SyncProducer
from delivery.reporter import SyncTaskReporter

producer = SyncProducer.from_settings(load_settings())  # thread-safe; share it


@producer.reports_task(total=30, min_interval=0.2)  # at most 5 progress updates a second
def render(task: SyncTaskReporter, prompt: str) -> str:
    for _ in range(30):
        # ... one denoising step ...
        if task.cancel_requested():  # the user pressed "cancel" in the browser
            task.cancelled("stopped by the user")
            return ""
        task.increment()
    url = f"https://cdn.example/{abs(hash(prompt))}.png"
    task.completed(result={"url": url})
    return url


if __name__ == "__main__":
    user = sys.argv[1] if len(sys.argv) > 1 else "alice"
    with ThreadPoolExecutor(max_workers=3) as pool:
        jobs = [
            pool.submit(render, f"a cat #{i}", task_id=f"img-{i}", user_id=user) for i in range(3)
        ]
        print([j.result() for j in jobs])
