"""Upload a sample recording to every configured provider (STORAGE_UPLOAD_MODE=both) and
verify each copy by downloading it back.

    python -m tests.servers run --s3 --azure -- python examples/dual_upload.py

(`nox -s demo` runs exactly that, against local SeaweedFS and Azurite servers.)
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
import struct
import sys
import tempfile
import wave
from pathlib import Path

from unistore import Storage


def write_sample_recording(path: Path, seconds: int = 120) -> None:
    """A two-minute 48 kHz stereo WAV 'meeting' (a few tones), about 23 MiB."""
    rate = 48_000
    with wave.open(str(path), "wb") as out:
        out.setnchannels(2)
        out.setsampwidth(2)
        out.setframerate(rate)
        tones: dict[int, bytes] = {}
        for second in range(seconds):
            tone = 220 + 20 * (second % 12)
            if tone not in tones:
                samples = (int(8000 * math.sin(2 * math.pi * tone * i / rate)) for i in range(rate))
                tones[tone] = b"".join(struct.pack("<hh", s, s) for s in samples)
            out.writeframes(tones[tone])


async def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    # the Azure SDK logs every request's headers at INFO; keep the demo's output to unistore's lines
    logging.getLogger("azure").setLevel(logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp:
        recording = Path(tmp) / "meeting-demo.wav"
        write_sample_recording(recording)
        digest = hashlib.sha256(recording.read_bytes()).hexdigest()
        key = f"recordings/demo/{recording.name}"
        size = recording.stat().st_size

        async with Storage.afrom_env() as storage:
            progress_marks: dict[str, int] = {}

            def progress(provider: str, done: int, total: int | None) -> None:
                step = int(10 * done / (total or size))
                if progress_marks.get(provider) != step:
                    progress_marks[provider] = step
                    print(f"  {provider}: {done / 2**20:6.1f} MiB of {(total or size) / 2**20:.1f} MiB")

            report = await storage.upload_file(
                recording, key, metadata={"meeting_id": "demo-1"}, progress=progress, delete_local=True
            )
            print(f"\nUploaded {size / 2**20:.1f} MiB as {key!r} in {report.duration_s:.2f}s")
            for name, result in report.results.items():
                status = "ok" if result.ok else f"FAILED: {result.error}"
                checksum = result.info.checksum if result.info else None
                print(f"  {name:6} {status} ({result.duration_s:.2f}s, checksum {checksum})")
            if not report.ok:
                print("The recording was kept locally because a provider failed.")
                return 1
            assert not recording.exists(), "delete_local removes the file once every provider has it"

            copies = await storage.head(key)  # one answer per provider: None = missing there
            print(f"  copies: {', '.join(f'{n}={i.size if i else None}' for n, i in copies.items())}")
            for name in storage.read_order:
                copy = Path(tmp) / f"copy-{name}.wav"
                await storage.download_file(key, copy, provider=name)
                same = hashlib.sha256(copy.read_bytes()).hexdigest() == digest
                print(f"  {name:6} download {'byte-identical' if same else 'DIFFERS'}")
                if not same:
                    return 1
    print("\nDemo finished: the recording is in every configured provider.")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
