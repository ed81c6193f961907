"""Benchmark orchestrator (issue #10): `nox -s bench [-- ARGS]` or `python -m tests.bench.run ARGS`.

Starts SeaweedFS and Azurite (fresh, empty data directories, free loopback ports), makes the
source files, then runs every selected (case, configuration) in a FRESH worker process
(`tests/bench/bench_workers.py`), `--rounds` times after one uncounted warm-up run per case,
configurations interleaved round-robin
(the order rotates each round). After each run it lists what the run stored (checking the
bytes arrived), deletes it, and vacuums SeaweedFS after heavy writes. At the end it writes
`results.json` (every raw number), `results.md` (the table of medians, min-max, ratios to the
peers, and the targets), `bench.png` and `README-snippet.md` into `--out` (default
`bench-results/`), and prints the tables.

    python -m tests.bench.run --quick                      # smoke run: 1 round, small sizes
    python -m tests.bench.run --rounds 3                   # a real run
    python -m tests.bench.run --case upload256-s3 --config unistore --rounds 1
    python -m tests.bench.run --case upload256 --config unistore-s3 --rounds 1 --profile
    python -m tests.bench.run --case upload1g-both --config unistore --set STORAGE_MAX_CONCURRENCY=2
    python -m tests.bench.run --case upload1g-both --rounds 1 --stall-sample   # where each long step went
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import datetime as _dt
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests import servers
from tests.bench.bench_cases import CASES, DOWNLOAD_SOURCE_KEY, UNISTORE_VARIANTS, Case, GiB, MiB, is_unistore
from tests.bench.bench_workers import COLD_PREFIX, RESULT_PREFIX

REPO = Path(__file__).resolve().parents[2]
BUCKET = "unistore-bench"
CONTAINER = "unistore-bench"
VACUUM_EVERY = 1 * GiB
"""Vacuum SeaweedFS once this many bytes were written to it since the last vacuum."""
_S3_NS = "{http://s3.amazonaws.com/doc/2006-03-01/}"


def log(message: str) -> None:
    sys.stderr.write(f"[bench {time.strftime('%H:%M:%S')}] {message}\n")
    sys.stderr.flush()


# --------------------------------------------------------------------------------------------
# selection
# --------------------------------------------------------------------------------------------


def select(case_filters: Sequence[str], config_filters: Sequence[str]) -> list[tuple[Case, list[str]]]:
    """Cases match by name or name prefix (`upload256` = all three); configurations by name,
    or `CONFIG-TARGET` (`unistore-s3`) to pick a configuration on one target."""
    chosen: list[tuple[Case, list[str]]] = []
    for case in CASES:
        if case_filters and not any(case.name == f or case.name.startswith(f + "-") for f in case_filters):
            continue
        configs = [
            c for c in case.configs
            if not config_filters or any(f in (c, f"{c}-{case.target}") for f in config_filters)
        ]
        if configs:
            chosen.append((case, configs))
    return chosen


# --------------------------------------------------------------------------------------------
# server-side listing and cleanup (standard library, signed by tests.servers)
# --------------------------------------------------------------------------------------------


def s3_list(s3: servers.S3Server, prefix: str) -> list[tuple[str, int]]:
    found: list[tuple[str, int]] = []
    token: str | None = None
    while True:
        query = {"list-type": "2", "prefix": prefix}
        if token:
            query["continuation-token"] = token
        status, _, body = s3.request("GET", f"/{BUCKET}", query=query)
        if status != 200:
            raise servers.ServerError(f"S3 list {prefix!r}: HTTP {status} {body[:300]!r}")
        root = ET.fromstring(body)
        for item in root.iter(f"{_S3_NS}Contents"):
            found.append((item.findtext(f"{_S3_NS}Key") or "", int(item.findtext(f"{_S3_NS}Size") or 0)))
        token = root.findtext(f"{_S3_NS}NextContinuationToken")
        if root.findtext(f"{_S3_NS}IsTruncated") != "true" or not token:
            return found


def azure_list(az: servers.AzuriteServer, prefix: str) -> list[tuple[str, int]]:
    found: list[tuple[str, int]] = []
    marker = ""
    while True:
        query = {"restype": "container", "comp": "list", "prefix": prefix}
        if marker:
            query["marker"] = marker
        status, _, body = az.request("GET", f"/{CONTAINER}", query=query)
        if status != 200:
            raise servers.ServerError(f"Azure list {prefix!r}: HTTP {status} {body[:300]!r}")
        root = ET.fromstring(body)
        for blob in root.iter("Blob"):
            found.append((blob.findtext("Name") or "", int(blob.findtext("Properties/Content-Length") or 0)))
        marker = root.findtext("NextMarker") or ""
        if not marker:
            return found


@dataclass
class Servers:
    s3: servers.S3Server
    az: servers.AzuriteServer

    def pids(self) -> str:
        return f"s3:{self.s3.pid},azure:{self.az.pid}"

    def listing(self, target: str, prefix: str) -> list[tuple[str, int]]:
        return s3_list(self.s3, prefix) if target == "s3" else azure_list(self.az, prefix)

    def delete(self, target: str, keys: Sequence[str]) -> None:
        def one(key: str) -> None:
            if target == "s3":
                self.s3.request("DELETE", f"/{BUCKET}/{key}")
            else:
                self.az.request("DELETE", f"/{CONTAINER}/{key}")

        with concurrent.futures.ThreadPoolExecutor(16) as pool:
            list(pool.map(one, keys))


# --------------------------------------------------------------------------------------------
# source files
# --------------------------------------------------------------------------------------------


def make_source(directory: Path, size: int) -> Path:
    """`size` random bytes (random: nothing on the way can compress or deduplicate them)."""
    path = directory / f"source-{size // MiB}MiB.bin"
    if path.exists() and path.stat().st_size == size:
        return path
    block = 8 * MiB
    with open(path, "wb") as fh:
        left = size
        while left:
            n = min(block, left)
            fh.write(os.urandom(n))
            left -= n
    return path


def put_download_sources(srv: Servers, source: Path, env: dict[str, str]) -> None:
    """Upload the object every download case reads, to both servers (obstore, in a worker)."""
    code = (
        "import asyncio, sys, obstore\nfrom pathlib import Path\n"
        "from tests.bench.bench_workers import obstore_store\n"
        "async def main():\n"
        f"    await asyncio.gather(*(obstore.put_async(obstore_store(t), {DOWNLOAD_SOURCE_KEY!r}, "
        f"Path({str(source)!r})) for t in ('s3', 'azure')))\n"
        "asyncio.run(main())\nprint('stored', flush=True)\n"
    )
    subprocess.run([sys.executable, "-c", code], env=env, cwd=REPO, capture_output=True, text=True, timeout=300)
    size = source.stat().st_size
    for target in ("s3", "azure"):
        listed = dict(srv.listing(target, DOWNLOAD_SOURCE_KEY))
        if listed.get(DOWNLOAD_SOURCE_KEY) != size:
            raise servers.ServerError(f"download source on {target}: {listed} (expected {size} bytes)")


def prime_servers(srv: Servers, targets: set[str], count: int = 96, size: int = 64 * 1024) -> float:
    """Write and delete `count` small objects on each target before the first timed run. A fresh
    SeaweedFS grows its volumes at the first writes to a bucket, and the first configuration of
    round 1 paid for it (measured: 200 x 64 KiB at 190 obj/s with 0.14 s of client CPU, against
    1,300 obj/s on the next run), so a case's first configuration was always at a disadvantage.
    Returns the seconds it took."""
    began = time.perf_counter()
    body = os.urandom(size)
    for target in sorted(targets):
        keys = [f"bench-prime/{i:04d}.bin" for i in range(count)]

        def put(key: str, target: str = target) -> None:
            if target == "s3":
                srv.s3.request("PUT", f"/{BUCKET}/{key}", body=body)
            else:
                srv.az.request("PUT", f"/{CONTAINER}/{key}", body=body, headers={"x-ms-blob-type": "BlockBlob"})

        with concurrent.futures.ThreadPoolExecutor(16) as pool:
            list(pool.map(put, keys))
        srv.delete(target, keys)
    return time.perf_counter() - began


# --------------------------------------------------------------------------------------------
# one run
# --------------------------------------------------------------------------------------------


def wait_for_quiet(max_wait_s: float, threshold_cores: float = 0.3, sample_s: float = 0.5) -> float:
    """Wait (at most `max_wait_s`) until the whole machine is nearly idle: our servers finished
    their background work and, on a shared machine, other jobs paused. Returns the CPU cores
    in use at the last sample."""
    from tests.bench.bench_measure import machine_busy_seconds

    deadline = time.monotonic() + max_wait_s
    while True:
        before = machine_busy_seconds()[0]
        time.sleep(sample_s)
        load = (machine_busy_seconds()[0] - before) / sample_s
        if load <= threshold_cores or time.monotonic() >= deadline:
            return load


def run_worker(
    case: Case, config: str, round_no: int, *, base_env: dict[str, str], srv: Servers, workdir: Path,
    sources: dict[int, Path], quick: bool, profile_dir: Path | None, timeout: float, quiet_wait: float,
    unistore_env: dict[str, str], stall_sample: bool = False,
) -> dict[str, Any]:
    size, count = case.sized(quick)
    prefix = f"bench/{case.name}/{config}/r{round_no}"
    env = dict(base_env)
    env.update(
        BENCH_SIZE=str(size), BENCH_COUNT=str(count), BENCH_IN_FLIGHT=str(case.in_flight),
        BENCH_PREFIX=prefix, BENCH_WORKDIR=str(workdir), BENCH_SERVER_PIDS=srv.pids(),
        BENCH_SCRATCH_BYTES=str((64 if quick else 320) * MiB),
    )
    if case.kind in ("upload", "download"):
        env["BENCH_SOURCE"] = str(sources[size])
    if is_unistore(config) and case.target != "none":
        env["STORAGE_UPLOAD_MODE"] = case.target
        env.update(unistore_env)
        env.update(UNISTORE_VARIANTS.get(config, {}))
    if profile_dir is not None and is_unistore(config):
        env["BENCH_PROFILE"] = str(profile_dir / f"profile-{case.name}-{config}-r{round_no}")
    if stall_sample:
        env["BENCH_STALL_SAMPLE"] = "1"
    argv = [sys.executable, "-m", "tests.bench.bench_workers", case.name, config]
    quiet_began = time.perf_counter()
    load_before = wait_for_quiet(quiet_wait) if quiet_wait > 0 else None
    quiet_s = time.perf_counter() - quiet_began
    began = time.perf_counter()
    try:
        proc = subprocess.run(argv, env=env, cwd=REPO, capture_output=True, text=True, timeout=timeout)
        stdout, stderr, rc = proc.stdout, proc.stderr, proc.returncode
    except subprocess.TimeoutExpired as exc:
        stdout = exc.stdout.decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        stderr, rc = f"timed out after {timeout:.0f} s", -1
    result: dict[str, Any] = {}
    cold: dict[str, Any] = {}
    for line in stdout.splitlines():
        if line.startswith(RESULT_PREFIX) and not result:
            result = json.loads(line[len(RESULT_PREFIX):])  # the first is the measurement
        elif line.startswith(COLD_PREFIX) and result and not cold:
            cold = json.loads(line[len(COLD_PREFIX):])  # the whole run's loop steps, after the close
    if result.get("ok"):
        result.update(cold)
    if not result:
        tail = "\n".join(stderr.strip().splitlines()[-15:])
        result = {"ok": False, "error": f"no result line (exit {rc}):\n{tail}"}
    elif rc != 0 and result.get("ok"):
        # obstore's Rust runtime may abort at interpreter exit after the work is done
        result["exit_code"] = rc
    result.update(
        case=case.name, config=config, round=round_no, process_s=round(time.perf_counter() - began, 2),
        quiet_wait_s=round(quiet_s, 2), load_before=None if load_before is None else round(load_before, 2),
    )
    if case.kind in ("upload", "stream", "small"):
        result["stored_ok"] = check_and_clean(srv, case, prefix, size, count)
        if result.get("ok") and not result["stored_ok"]:
            result.update(ok=False, error="the servers do not hold what the run reported as uploaded")
    return result


def check_and_clean(srv: Servers, case: Case, prefix: str, size: int, count: int) -> bool:
    """List what the run stored under its prefix, check it, and delete it."""
    ok = True
    for target in case.touches:
        listed = srv.listing(target, prefix + "/")
        stored = [(k, n) for k, n in listed if not k.endswith("/warm-up")]
        if len(stored) != count or any(n != size for _, n in stored):
            ok = False
        srv.delete(target, [k for k, _ in listed])
    return ok


# --------------------------------------------------------------------------------------------
# metadata
# --------------------------------------------------------------------------------------------


def _version(dist: str) -> str:
    from importlib import metadata

    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "-"


def _command_output(argv: Sequence[str]) -> str:
    try:
        out = subprocess.run(list(argv), capture_output=True, text=True, timeout=60, cwd=REPO)
    except (OSError, subprocess.SubprocessError):
        return "-"
    return (out.stdout or out.stderr).strip()


def machine_info(srv: Servers) -> dict[str, Any]:
    cpu = "-"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem_gib = 0.0
    with contextlib.suppress(OSError, ValueError, IndexError):
        mem_gib = int(Path("/proc/meminfo").read_text().split()[1]) / 1024 / 1024
    init_text = (REPO / "unistore" / "__init__.py").read_text()
    match = re.search(r'__version__ = "([^"]+)"', init_text)
    commit = _command_output(["git", "rev-parse", "--short", "HEAD"])
    dirty = _command_output(["git", "status", "--porcelain", "--untracked-files=no", "unistore"])
    weed = srv.s3._argv[0] if srv.s3._argv else "weed"
    azurite_bin = srv.az._argv[0] if srv.az._argv else "azurite-blob"
    weed_version = _command_output([weed, "version"]).splitlines()
    return {
        "date": _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": round(mem_gib, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "unistore": f"{match.group(1) if match else '?'} ({commit}{', modified' if dirty.strip() else ''})",
        "versions": {
            name: _version(name)
            for name in ("aioboto3", "aiobotocore", "botocore", "azure-storage-blob", "aiohttp", "obstore")
        },
        "seaweedfs": next((w for w in (weed_version[0] if weed_version else "-").split() if w[:1].isdigit()
                           and "." in w), "-"),
        "azurite": (_command_output([azurite_bin, "--version"]).splitlines() or ["-"])[-1],
        "loadavg_at_start": os.getloadavg()[0],
    }


# --------------------------------------------------------------------------------------------
# main
# --------------------------------------------------------------------------------------------


@contextlib.contextmanager
def started_servers() -> Iterator[Servers]:
    az = servers.start_azurite(wait=False)  # fresh temporary data directory, deleted on close
    s3: servers.S3Server | None = None
    try:
        s3 = servers.start_s3_server()
        s3.create_bucket(BUCKET)
        az.wait_ready()
        az.create_container(CONTAINER)
        yield Servers(s3, az)
    finally:
        az.close()
        if s3 is not None:
            s3.close()


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    names = ", ".join(c.name for c in CASES)
    p = argparse.ArgumentParser(prog="python -m tests.bench.run", description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=None, help="rounds of every configuration (default 5; 1 with --quick)")
    p.add_argument("--quick", action="store_true", help="smoke run: 1 round, smaller sizes")
    p.add_argument("--case", action="append", default=[], help=f"case name or prefix, repeatable ({names})")
    p.add_argument("--config", action="append", default=[],
                   help="configuration, repeatable: unistore, aioboto3, azure-aio[-c1|-c8], obstore, sdk-pair, "
                   "obstore-pair; or CONFIG-TARGET such as unistore-s3")
    p.add_argument("--out", type=Path, default=REPO / "bench-results", help="output folder (default bench-results/)")
    p.add_argument("--profile", action="store_true",
                   help="run unistore's workers under pyinstrument; profiles go to the output folder")
    p.add_argument("--stall-sample", action="store_true",
                   help="sample the loop thread's stack during long steps (every configuration): the "
                   "slowest steps of the whole run then name the functions they spent their time in "
                   "(results.json `cold_slowest`, results.md); the sampler thread costs some throughput")
    p.add_argument("--set", action="append", default=[], metavar="STORAGE_X=VALUE",
                   help="extra environment for unistore's workers, repeatable (tuning: "
                   "--set STORAGE_MAX_CONCURRENCY=8 --set STORAGE_CHUNK_SIZE=16MiB); STORAGE_* from the "
                   "calling environment are NOT passed on")
    p.add_argument("--no-warmup", dest="warmup", action="store_false",
                   help="skip the one uncounted run of each case before round 1 (the first run after the "
                   "servers start, or after a case's source is written, was the slowest of its case whatever "
                   "its configuration, and round 1 always starts with unistore); skipped with --quick")
    p.add_argument("--timeout", type=float, default=600.0, help="seconds per worker process")
    p.add_argument("--quiet-wait", type=float, default=None,
                   help="before each run, wait up to this many seconds for the machine to go idle "
                   "(< 0.3 cores busy; default 5, 0 with --quick)")
    args = p.parse_args(argv)
    if args.rounds is None:
        args.rounds = 1 if args.quick else 5
    if args.quick:
        args.warmup = False
    if args.quiet_wait is None:
        args.quiet_wait = 0.0 if args.quick else 5.0
    return args


def main(argv: Sequence[str] | None = None) -> int:
    from tests.bench import bench_report

    args = parse_args(argv)
    unistore_env: dict[str, str] = {}
    for item in args.set:
        name, sep, value = item.partition("=")
        if not sep or not name.startswith("STORAGE_"):
            log(f"--set {item!r}: expected STORAGE_NAME=VALUE")
            return 2
        unistore_env[name] = value
    plan = select(args.case, args.config)
    if not plan:
        log("nothing selected")
        return 2
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="unistore-bench-"))
    started = time.perf_counter()
    runs: list[dict[str, Any]] = []
    try:
        sizes = {case.sized(args.quick)[0] for case, _ in plan if case.kind in ("upload", "download")}
        log(f"making source files {sorted(s // MiB for s in sizes)} MiB in {workdir}")
        sources = {size: make_source(workdir, size) for size in sizes}
        with started_servers() as srv:
            log(f"servers up: SeaweedFS {srv.s3.endpoint} (pid {srv.s3.pid}), Azurite {srv.az.blob_url} "
                f"(pid {srv.az.pid})")
            base_env = {k: v for k, v in os.environ.items() if not k.startswith(("STORAGE_", "BENCH_"))}
            base_env.update(srv.s3.env(BUCKET))
            base_env.update(srv.az.env(CONTAINER))
            base_env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), base_env.get("PYTHONPATH")]))
            meta = machine_info(srv)
            downloads = [case for case, _ in plan if case.kind == "download"]
            if downloads:
                put_download_sources(srv, sources[downloads[0].sized(args.quick)[0]], base_env)
            touched = {t for case, _ in plan for t in case.touches}
            if touched:
                log(f"primed {', '.join(sorted(touched))} in {prime_servers(srv, touched):.1f} s")
            if args.warmup:
                for case, configs in plan:
                    if case.kind == "import":
                        continue
                    result = run_worker(
                        case, configs[0], -1, base_env=base_env, srv=srv, workdir=workdir, sources=sources,
                        quick=args.quick, profile_dir=None, timeout=args.timeout, quiet_wait=0.0,
                        unistore_env=unistore_env,
                    )
                    log("warm-up, not counted: " + bench_report.progress_line(result, -1, args.rounds))
            written_since_vacuum = 0
            for round_no in range(args.rounds):
                for case, configs in plan:
                    shift = round_no % len(configs)
                    for config in configs[shift:] + configs[:shift]:
                        result = run_worker(
                            case, config, round_no, base_env=base_env, srv=srv, workdir=workdir,
                            sources=sources, quick=args.quick, profile_dir=out if args.profile else None,
                            timeout=args.timeout, quiet_wait=args.quiet_wait, unistore_env=unistore_env,
                            stall_sample=args.stall_sample,
                        )
                        runs.append(result)
                        log(bench_report.progress_line(result, round_no, args.rounds))
                        if "s3" in case.touches and case.kind != "download":
                            written_since_vacuum += case.total_bytes(args.quick)
                        if written_since_vacuum >= VACUUM_EVERY:
                            t0 = time.perf_counter()
                            srv.s3.vacuum()
                            log(f"vacuumed SeaweedFS in {time.perf_counter() - t0:.1f} s")
                            written_since_vacuum = 0
            if downloads:
                for target in ("s3", "azure"):
                    srv.delete(target, [DOWNLOAD_SOURCE_KEY])
        meta.update(
            rounds=args.rounds, quick=args.quick, profile=args.profile, unistore_env=unistore_env,
            stall_sample=args.stall_sample,
            elapsed_min=round((time.perf_counter() - started) / 60, 1),
        )
        report = bench_report.write_all(out, runs, meta, plan, quick=args.quick)
        sys.stdout.write(report + "\n")
        log(f"done in {meta['elapsed_min']} min; results in {out}/")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    failed = [r for r in runs if not r.get("ok")]
    return 1 if failed and len(failed) == len(runs) else 0


if __name__ == "__main__":
    sys.exit(main())
