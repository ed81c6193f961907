"""Run every example in examples/ against the servers named by the environment (what
`nox -s examples` does inside `python -m tests.servers run`): each with the upload mode it is
written for. Exit status: 0 only when every example exited 0.

    python -m tests.servers run --s3 --azure -- python -m tests.run_examples
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

EXAMPLES_DIR = Path(__file__).parent.parent / "examples"

EXAMPLES: dict[str, str] = {
    "s3_only.py": "s3",
    "azure_only.py": "azure",
    "dual_upload.py": "both",
    "streaming_recording.py": "both",
    "sync_worker.py": "both",
}
"""Each example and the STORAGE_UPLOAD_MODE it runs with."""


def example_env(script: str, base: dict[str, str]) -> dict[str, str]:
    return {**base, "STORAGE_UPLOAD_MODE": EXAMPLES[script], "PYTHONPATH": str(EXAMPLES_DIR.parent)}


def main() -> int:
    missing = sorted({p.name for p in EXAMPLES_DIR.glob("*.py")} - set(EXAMPLES))
    if missing:
        sys.stderr.write(f"examples without an upload mode in tests/run_examples.py: {missing}\n")
        return 2
    failed: list[str] = []
    for script in EXAMPLES:
        began = time.monotonic()
        sys.stderr.write(f"--- {script} (STORAGE_UPLOAD_MODE={EXAMPLES[script]})\n")
        done = subprocess.run(
            [sys.executable, str(EXAMPLES_DIR / script)], env=example_env(script, dict(os.environ)),
            stdin=subprocess.DEVNULL, timeout=300, check=False,
        )
        sys.stderr.write(f"--- {script}: exit {done.returncode} in {time.monotonic() - began:.1f} s\n")
        if done.returncode != 0:
            failed.append(script)
    if failed:
        sys.stderr.write(f"failed: {', '.join(failed)}\n")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
