"""Image generation: jobs run in a thread pool and report progress often; the client
must not be flooded (only the latest progress matters), a network blip must not lose
the "completed" message, and a reconnecting client catches up."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

from delivery.producer import SyncProducer


def render(producer: SyncProducer, job: str, user: str, steps: int) -> None:
    """A blocking job in a pool thread, reporting every step."""
    with producer.task(job, user_id=user, total=steps, min_interval=0) as task:
        for i in range(steps):
            task.increment(message=f"denoising {i + 1}/{steps}")
        task.completed(result={"url": f"https://cdn.example/{job}.png"})


async def test_offline_user_catches_up_with_the_latest_state_only(
    edge, sync_producer: SyncProducer
) -> None:
    node = await edge()
    loop = asyncio.get_running_loop()
    with ThreadPoolExecutor(max_workers=3) as pool:
        await asyncio.gather(
            *(
                loop.run_in_executor(pool, render, sync_producer, f"img-{i}", "artist", 50)
                for i in range(3)
            )
        )
    # 3 jobs x 52 reports while the artist was away; on reconnect only what matters
    client, _ = await node.online("artist")
    frames = await client.messages(3)
    assert sorted(f["payload"]["task_id"] for f in frames) == ["img-0", "img-1", "img-2"]
    assert {f["payload"]["status"] for f in frames} == {"completed"}
    assert frames[0]["payload"]["result"]["url"].endswith(".png")
    await client.ack(*(f["id"] for f in frames))
    await client.silent(0.3)  # no stale progress follows


async def test_network_blip_does_not_lose_completed(edge, sync_producer: SyncProducer) -> None:
    node = await edge(ack_timeout_seconds=1)
    client, _ = await node.online("artist-2")
    loop = asyncio.get_running_loop()
    with ThreadPoolExecutor(max_workers=1) as pool:
        job = loop.run_in_executor(pool, render, sync_producer, "img-9", "artist-2", 5)
        first = await client.recv_type("message")  # progress is arriving ...
        assert first["payload"]["task_id"] == "img-9"
        client.ws.transport.abort()  # ... and the network drops: no close, no ack
        await job
    # whatever was unacked went back (handed back on close, or retried on timeout)
    again, _ = await node.online("artist-2")
    seen = []
    while "completed" not in seen:
        m = await again.recv_type("message", timeout=10)
        seen.append(m["payload"]["status"])
        await again.ack(m["id"])
    token = {"Authorization": f"Bearer {node.token('artist-2')}"}
    r = await node.http.get("/v1/tasks/img-9", headers=token)
    assert r.json()["status"] == "completed" and r.json()["progress"] == 100
