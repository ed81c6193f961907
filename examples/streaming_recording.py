"""Stream a live "meeting" into every configured provider while it is recorded: chunks are
written as the recorder produces them, never to a local file first.

    python -m tests.servers run --s3 --azure -- python examples/streaming_recording.py
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys

from unistore import Storage

SECONDS = int(os.environ.get("DEMO_MEETING_SECONDS", "60"))
BYTES_PER_SECOND = 512 * 1024  # a 4 Mbit/s video stream


async def fake_recorder(seconds: int, speedup: float = 20.0) -> asyncio.Queue[bytes | None]:
    queue: asyncio.Queue[bytes | None] = asyncio.Queue(maxsize=8)

    async def produce() -> None:
        for _ in range(seconds):
            await queue.put(os.urandom(BYTES_PER_SECOND // 4) * 4)
            await asyncio.sleep(1 / speedup)
        await queue.put(None)

    asyncio.get_running_loop().create_task(produce())
    return queue


async def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    # the Azure SDK logs every request's headers at INFO; keep the demo's output to unistore's lines
    logging.getLogger("azure").setLevel(logging.WARNING)
    key = "recordings/demo/live-meeting.webm"
    async with Storage.afrom_env() as storage:
        queue = await fake_recorder(SECONDS)
        async with storage.open_writer(key, content_type="video/webm") as writer:
            while (chunk := await queue.get()) is not None:
                await writer.write(chunk)
        report = writer.report
        assert report is not None
        print(f"Streamed {writer.bytes_written / 2**20:.1f} MiB to {', '.join(report.results)}: ok={report.ok}")
        for name, result in report.results.items():
            print(f"  {name:6} {'ok' if result.ok else result.error}")
        return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
