"""Content moderation: a background job (a Celery task, here a thread pool) tells the
seller that the review of their product is done. The seller may be offline: Courier
parks the message and delivers it when any of their devices connects (7 days).

Run Courier (./scripts/serve), then: .venv/bin/python examples/moderation.py
"""

from concurrent.futures import ThreadPoolExecutor

from api.runtime import load_settings
from delivery.producer import SyncProducer

producer = SyncProducer.from_settings(load_settings())  # one per process, any thread


def review_product(product_id: str, seller_id: str) -> None:
    """Your job's code: blocking, in a worker thread, no event loop needed."""
    verdict = "approved"  # ... the actual review ...
    accepted = producer.send(
        seller_id,
        {"kind": "moderation", "product": product_id, "verdict": verdict},
        priority="high",
        idempotency_key=f"moderation:{product_id}",  # a retried job sends nothing twice
    )
    print(f"{product_id}: message {accepted.id} is {accepted.status}")


if __name__ == "__main__":
    with ThreadPoolExecutor(max_workers=4) as pool:
        for i in range(4):
            pool.submit(review_product, f"product-{i}", "seller-1")
    # `courier status <id>` shows each message's status and timeline
