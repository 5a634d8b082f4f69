"""Task status: interview-question generation reports its progress to the user who
started it. Open examples/task_page.html in a browser for the progress bar; clients
without WebSocket poll GET /v1/tasks/{task_id}.

Run Courier (./scripts/serve), then: .venv/bin/python examples/task_status.py alice
"""

import asyncio
import sys

from api.runtime import load_settings
from delivery.producer import Producer
from delivery.reporter import TaskReporter

producer = Producer.from_settings(load_settings())


@producer.reports_task(total=4)  # running on entry, completed on return, failed on raise
async def generate_questions(task: TaskReporter, role: str) -> list[str]:
    questions = []
    for topic in ("experience", "system design", "culture", "salary"):
        await asyncio.sleep(1)  # ... the real work ...
        questions.append(f"Tell me about your {topic} for a {role} role.")
        await task.increment(message=f"wrote the {topic} question")
    return questions


async def parse_resume(user: str) -> None:
    """The same with the context manager and explicit calls."""
    async with producer.task("resume-1", user_id=user) as task:
        await task.progress(50, "reading the PDF")
        await asyncio.sleep(1)
        await task.completed(result={"skills": ["python", "redis"]})


async def main(user: str) -> None:
    print(await generate_questions("backend engineer", task_id="questions-1", user_id=user))
    await parse_resume(user)
    await producer.aclose()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1] if len(sys.argv) > 1 else "alice"))
