"""Task status: interview-question generation and resume parsing report their
progress to the user who started them; the page draws a progress bar; clients
without WebSocket poll over HTTP."""

from __future__ import annotations

import asyncio

from delivery.producer import Producer


async def generate_questions(producer: Producer, task_id: str, user: str, gate: asyncio.Event):
    """The background job: three steps, each reported."""
    async with producer.task(task_id, user_id=user, total=3, min_interval=0) as task:
        for step in ("read the job description", "draft questions", "rank questions"):
            await gate.wait()
            gate.clear()
            await task.increment(message=step)
        # leaving the block reports `completed`


async def test_progress_bar_live_and_over_http(edge, producer) -> None:
    node = await edge()
    page, _ = await node.online("candidate-1")
    await page.send({"type": "subscribe", "topic": "task:iq-1"})
    assert (await page.recv_type("error"))["code"] == "unknown_task"  # not started yet

    gate = asyncio.Event()
    job = asyncio.create_task(generate_questions(producer, "iq-1", "candidate-1", gate))
    # the owner hears `running` as a guaranteed message with the task's topic
    running = await page.recv_type("message")
    assert running["topic"] == "task:iq-1" and running["payload"]["status"] == "running"
    await page.ack(running["id"])

    await page.send({"type": "subscribe", "topic": "task:iq-1"})
    assert (await page.recv_type("subscribed"))["topic"] == "task:iq-1"
    current = await page.recv_type("topic")  # a late subscriber catches up at once
    assert current["data"]["status"] == "running"

    bar = []
    for _ in range(3):
        gate.set()
        live = await page.recv_type("topic")
        bar.append(round(live["data"]["progress"]))
    await job
    done = await page.recv_type("topic")
    assert bar == [33, 67, 100] and done["data"]["status"] == "completed"

    # a client without WebSocket polls the latest status
    token = node.token("candidate-1")
    r = await node.http.get("/v1/tasks/iq-1", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200 and r.json()["status"] == "completed"
    assert r.json()["progress"] == 100
    other = node.token("candidate-2")
    r = await node.http.get("/v1/tasks/iq-1", headers={"Authorization": f"Bearer {other}"})
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"


async def test_failed_parsing_is_reported_and_final(edge, producer) -> None:
    node = await edge()
    page, _ = await node.online("candidate-3")

    async def parse_resume() -> None:
        async with producer.task("rp-1", user_id="candidate-3"):
            raise ValueError("the PDF has no text layer")

    try:
        await parse_resume()
    except ValueError:
        pass
    statuses: list[str] = []
    while "failed" not in statuses:
        m = await page.recv_type("message")
        statuses.append(m["payload"]["status"])
        await page.ack(m["id"])
    # `running` may have been collapsed away by `failed` before it was sent: only the
    # latest status of a task matters, and a final one is never collapsed away
    assert statuses in (["running", "failed"], ["failed"])
    svc = node.token("parser", role="service")
    r = await node.http.get(
        "/v1/tasks/rp-1", headers={"Authorization": f"Bearer {node.token('candidate-3')}"}
    )
    assert r.json()["error"] == "ValueError: the PDF has no text layer"
    # a final status never changes again
    r = await node.http.post(
        "/v1/tasks/rp-1/status",
        json={"user_id": "candidate-3", "status": "progress", "progress": 50},
        headers={"Authorization": f"Bearer {svc}"},
    )
    assert r.status_code == 409 and r.json()["error"]["code"] == "conflict"


async def test_http_publisher_and_active_tasks_on_connect(edge) -> None:
    node = await edge()
    svc = {"Authorization": f"Bearer {node.token('jobs', role='service')}"}
    r = await node.http.post(
        "/v1/tasks/iq-9/status",
        headers=svc,
        json={
            "user_id": "candidate-4",
            "status": "progress",
            "progress": 40,
            "message": "drafting",
        },
    )
    assert r.status_code == 202, r.text
    r = await node.http.post(
        "/v1/tasks/iq-9/status", headers=svc, json={"user_id": "candidate-4", "status": "exploded"}
    )
    assert r.status_code == 422
    r = await node.http.post(
        "/v1/tasks/iq-9/status", headers=svc, json={"user_id": "someone-else", "status": "running"}
    )
    assert r.status_code == 202  # task ids are scoped by owner: this is another task
    page = await node.connect("candidate-4")
    await page.recv_type("connected")
    tasks = await page.recv_type("tasks")
    assert [(t["task_id"], t["status"], t["progress"]) for t in tasks["tasks"]] == [
        ("iq-9", "progress", 40)
    ]
