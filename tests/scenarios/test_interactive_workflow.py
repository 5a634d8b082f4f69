"""Interactive workflow: a pipeline step asks the user "proceed?" and waits for the
answer, with a timeout and a default; or the user cancels the task from the browser."""

from __future__ import annotations

import asyncio

from delivery.producer import Producer, SyncProducer


async def test_pipeline_waits_for_the_users_answer(edge, producer: Producer) -> None:
    node = await edge()
    browser, _ = await node.online("analyst")

    async def step() -> str:
        return await producer.request(
            "analyst",
            {"question": "Import 12,000 rows into production?"},
            timeout=10,
            default="no",
        )

    waiting = asyncio.create_task(step())
    prompt = await browser.recv_type("message")
    assert prompt["reply_requested"] is True
    await browser.send({"type": "reply", "id": prompt["id"], "data": "yes"})
    assert await waiting == "yes"

    m = await node.wait_status(prompt["id"], "delivered")  # the reply counts as the ack
    assert "replied" in [e["event"] for e in m["timeline"]] and m["reply"] == "yes"
    await browser.send({"type": "reply", "id": prompt["id"], "data": "no"})
    assert (await browser.recv_type("error"))["code"] == "already_replied"


async def test_no_answer_takes_the_default(edge, producer: Producer) -> None:
    node = await edge()
    browser, _ = await node.online("analyst-2")
    answer = await producer.request(
        "analyst-2", {"question": "Proceed?"}, timeout=0.5, default="skip"
    )
    await browser.recv_type("message")  # it was shown, but nobody clicked
    assert answer == "skip"


async def test_answer_given_on_another_device_after_reconnecting(
    edge, sync_producer: SyncProducer
) -> None:
    node = await edge()
    loop = asyncio.get_running_loop()
    # a blocking pipeline (a thread) asks while the user is offline
    waiting = loop.run_in_executor(
        None, lambda: sync_producer.request("analyst-3", {"question": "Deploy?"}, timeout=10)
    )
    phone, _ = await node.online("analyst-3")
    prompt = await phone.recv_type("message")
    await phone.send({"type": "reply", "id": prompt["id"], "data": {"deploy": True}})
    assert await waiting == {"deploy": True}


async def test_user_cancels_the_task_from_the_browser(edge, producer: Producer) -> None:
    node = await edge()
    browser, _ = await node.online("analyst-4")
    steps_done = 0

    async def long_import() -> None:
        nonlocal steps_done
        async with producer.task("import-1", user_id="analyst-4", min_interval=0) as task:
            for _ in range(1000):
                await asyncio.sleep(0.01)
                steps_done += 1
                await task.progress(steps_done / 10)

    job = asyncio.create_task(long_import())
    running = await browser.recv_type("message")
    assert running["payload"]["status"] == "running"
    await browser.send({"type": "cancel", "task_id": "import-1"})
    await asyncio.wait_for(job, 5)  # the block was cancelled; the job returns
    assert steps_done < 1000
    token = {"Authorization": f"Bearer {node.token('analyst-4')}"}
    r = await node.http.get("/v1/tasks/import-1", headers=token)
    assert r.json()["status"] == "cancelled" and r.json()["cancel_requested"] is True

    await browser.send({"type": "cancel", "task_id": "not-mine"})
    assert (await browser.recv_type("error"))["code"] == "unknown_task"


async def test_same_task_id_of_two_users_stays_apart(edge, producer: Producer) -> None:
    """Task ids are per owner: alice's task "123" and bob's task "123" are two tasks;
    alice can neither cancel bob's nor watch its progress."""
    node = await edge()
    alice, _ = await node.online("alice-t")
    await producer.task_status("123", "alice-t", "running")
    await alice.recv_type("message")
    await alice.send({"type": "subscribe", "topic": "task:123"})
    await alice.recv_type("subscribed")
    await alice.recv_type("topic")  # her own task's current state

    bob_steps = 0

    async def bobs_job() -> None:
        nonlocal bob_steps
        async with producer.task("123", user_id="bob-t", min_interval=0) as task:
            for _ in range(30):
                await asyncio.sleep(0.02)
                bob_steps += 1
                await task.progress(bob_steps)

    job = asyncio.create_task(bobs_job())
    await asyncio.sleep(0.1)
    await alice.send({"type": "cancel", "task_id": "123"})  # cancels *her* task only
    await asyncio.wait_for(job, 5)
    assert bob_steps == 30  # bob's job ran to the end
    await alice.silent(0.2)  # and none of bob's progress reached alice
    bob = await producer.get_task("123", "bob-t")
    assert bob["status"] == "completed" and bob["cancel_requested"] is False
