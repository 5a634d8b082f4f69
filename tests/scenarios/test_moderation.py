"""Content moderation: a background job (in a worker thread, like a Celery task)
finishes reviewing a product and tells the seller, who may be offline."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

from delivery.producer import SyncProducer


def review_product(producer: SyncProducer, seller: str, product: str, verdict: str) -> str:
    """The job: blocking code in a thread, no event loop in sight."""
    accepted = producer.send(
        seller,
        {"kind": "moderation", "product": product, "verdict": verdict},
        priority="high",
        idempotency_key=f"moderation:{product}",  # the job may be retried by its queue
    )
    return accepted.id


async def test_offline_seller_is_told_when_they_come_back(edge, sync_producer) -> None:
    node = await edge()
    loop = asyncio.get_running_loop()
    with ThreadPoolExecutor(max_workers=4) as pool:
        ids = await asyncio.gather(
            *(
                loop.run_in_executor(pool, review_product, sync_producer, "seller-1", f"p{i}", "ok")
                for i in range(8)
            )
        )
        # the job queue retries one job: same idempotency key, same message, no new one
        again = await loop.run_in_executor(
            pool, review_product, sync_producer, "seller-1", "p3", "ok"
        )
    assert again == ids[3] and len(set(ids)) == 8
    for mid in ids:
        await node.wait_status(mid, "parked")  # the seller is offline

    seller, _ = await node.online("seller-1")
    frames = await seller.messages(8)
    assert sorted(f["id"] for f in frames) == sorted(ids)
    assert {f["payload"]["verdict"] for f in frames} == {"ok"}
    await seller.ack(*ids)
    for mid in ids:
        m = await node.wait_status(mid, "delivered")
        assert [e["event"] for e in m["timeline"]] == ["queued", "parked", "sent", "acked"]


async def test_online_seller_is_told_at_once(edge, sync_producer) -> None:
    node = await edge()
    seller, _ = await node.online("seller-2")
    loop = asyncio.get_running_loop()
    mid = await loop.run_in_executor(
        None, review_product, sync_producer, "seller-2", "p9", "rejected: blurry photos"
    )
    (frame,) = await seller.messages(1)
    assert frame["id"] == mid and frame["priority"] == "high"
    assert frame["payload"]["verdict"] == "rejected: blurry photos"
    await seller.ack(mid)
    await node.wait_status(mid, "delivered")
