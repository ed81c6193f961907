"""Blocking code (a Django view, a Celery task): a pool of threads sharing one SyncStorage,
which runs every call on its own event loop. Each "task" uploads a recording to every
configured provider and checks both copies; then the listing and the cleanup.

    python -m tests.servers run --s3 --azure -- python examples/sync_worker.py
"""

from __future__ import annotations

import os
import sys
from concurrent.futures import ThreadPoolExecutor

from unistore.sync import SyncStorage

PREFIX = "recordings/worker/"


def process_recording(store: SyncStorage, meeting: int) -> str:
    """What a Celery task would do for one finished meeting."""
    key = f"{PREFIX}meeting-{meeting:03d}.webm"
    report = store.upload_bytes(os.urandom(256 * 1024), key, content_type="video/webm")
    report.raise_for_failures()
    held = store.exists(key)  # {"s3": True, "azure": True}
    if not all(held.values()):
        raise RuntimeError(f"{key} is missing from {[name for name, ok in held.items() if not ok]}")
    return key


def main() -> int:
    with SyncStorage.from_env() as store, ThreadPoolExecutor(max_workers=8) as pool:
        keys = list(pool.map(lambda n: process_recording(store, n), range(24)))
        print(f"{len(keys)} recordings uploaded by 8 threads to {', '.join(store.providers)}")

        listed = store.list(PREFIX)
        for item in listed[:3]:
            print(f"  {item.key}: {item.size} bytes on {', '.join(item.providers)}")
        print(f"  ... {len(listed)} listed")

        reports = list(pool.map(store.delete, keys))
        remaining = [r.key for r in reports if not r.ok]
        print(f"deleted {len(reports) - len(remaining)} of {len(reports)}; left: {len(store.list(PREFIX))}")
        return 0 if len(listed) == len(keys) and not remaining else 1


if __name__ == "__main__":
    sys.exit(main())
