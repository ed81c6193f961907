"""Per-request cost of telemetry on `unistore._request.call` (no network: a request that
returns at once), in three processes: the API absent, the API present but no provider set, the
SDK configured (spans to a batch processor that drops them, metrics to an in-memory reader).

    python -m tests.bench.request_overhead
"""

from __future__ import annotations

import subprocess
import sys

N = 20_000

_WORKER = """
import sys, asyncio, time
MODE = sys.argv[1]
if MODE == "absent":
    sys.modules["opentelemetry"] = None
if MODE == "sdk":
    from tests.bench.bench_workers import install_otel
    install_otel()
from unistore._request import call
from unistore import _telemetry
_telemetry.refresh()
from unistore._multipart import Transfer

class Target:
    name = "bench"
    transfer = Transfer()
    network_hint = ""
    def map_error(self, exc, ctx):
        return None

async def ok():
    return None

async def main():
    target = Target()
    for _ in range(1000):
        await call(target, "part 1", "k", ok)
    began = time.perf_counter()
    for _ in range(N):
        await call(target, "part 1", "k", ok)
    print((time.perf_counter() - began) / N * 1e6)

N = int(sys.argv[2])
asyncio.run(main())
"""


def main() -> None:
    for mode in ("absent", "no-provider", "sdk"):
        done = subprocess.run([sys.executable, "-c", _WORKER, mode, str(N)], capture_output=True, text=True, check=True)
        print(f"{mode:12} {float(done.stdout):7.2f} us per request")


if __name__ == "__main__":
    main()
