"""What a benchmark worker measures about itself and the servers, standard library only.

- wall time (`time.perf_counter`) and client CPU (`os.times()` user + system of this process,
  every thread; `loop_cpu_s` is the event-loop thread's share) over the timed window only:
  interpreter start-up, imports and client set-up stay out of it;
- CPU used by anything else on the machine over the window (`/proc/stat` busy time minus the
  worker and the servers): a noise gauge on a shared machine;
- each server's CPU over the same window: utime + stime (+ reaped children) of the server PIDs
  and all their descendants, from `/proc/<pid>/stat`;
- peak RSS: `VmHWM` of `/proc/self/status` (not `ru_maxrss`, which Linux carries across `exec`
  from the parent);
- event-loop stalls: a ticker sleeps 5 ms at a time and records how late it wakes; the same
  lateness minus the loop thread's run-queue wait over the tick (`/proc/self/task/<tid>/schedstat`,
  second field) is the stall the process caused itself (GIL, blocking calls), not the machine.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager
from types import TracebackType
from typing import Any, Self

MiB = 1024 * 1024
TICK_S = 0.005
_CLK_TCK = os.sysconf("SC_CLK_TCK")


def vm_status(field: str = "VmHWM") -> int:
    """A `/proc/self/status` memory field in bytes (0 where /proc is missing)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _stat_fields(pid: int) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            text = fh.read()
    except OSError:
        return None
    # the command name (field 2) may hold spaces and parentheses: split after the last ')'
    return text[text.rindex(")") + 2 :].split()


def _children_map() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        fields = _stat_fields(int(entry))
        if fields is not None:
            children.setdefault(int(fields[1]), []).append(int(entry))
    return children


def tree_cpu_seconds(pid: int, children: Mapping[int, list[int]] | None = None) -> float:
    """CPU seconds (user + system, with reaped children) of `pid` and all its descendants."""
    children = children if children is not None else _children_map()
    total = 0
    stack = [pid]
    seen: set[int] = set()
    while stack:
        current = stack.pop()
        if current in seen:
            continue
        seen.add(current)
        fields = _stat_fields(current)
        if fields is None:
            continue
        # after the ')' split: index 11..14 = utime, stime, cutime, cstime (fields 14-17)
        total += sum(int(v) for v in fields[11:15])
        stack.extend(children.get(current, ()))
    return total / _CLK_TCK


def servers_cpu(pids: Mapping[str, int]) -> dict[str, float]:
    if not pids:
        return {}
    children = _children_map()
    return {name: tree_cpu_seconds(pid, children) for name, pid in pids.items()}


def parse_server_pids(value: str | None) -> dict[str, int]:
    """`s3:123,azure:456` -> {"s3": 123, "azure": 456}."""
    result: dict[str, int] = {}
    for item in (value or "").split(","):
        name, sep, pid = item.partition(":")
        if sep and pid.strip().isdigit():
            result[name.strip()] = int(pid)
    return result


def machine_busy_seconds() -> tuple[float, float]:
    """(busy CPU seconds of the whole machine, steal seconds) from the first line of /proc/stat."""
    try:
        with open("/proc/stat") as fh:
            fields = [int(v) for v in fh.readline().split()[1:]]
    except (OSError, ValueError):
        return 0.0, 0.0
    # user nice system idle iowait irq softirq steal ...
    busy = sum(fields[:3]) + sum(fields[5:8])
    steal = fields[7] if len(fields) > 7 else 0
    return busy / _CLK_TCK, steal / _CLK_TCK


def thread_cpu_ns() -> dict[int, int]:
    """CPU time (ns) of every live thread of this process, by native id (schedstat's first
    field: precise, unlike the 10 ms ticks of /proc/<pid>/task/<tid>/stat)."""
    out: dict[int, int] = {}
    try:
        tids = os.listdir("/proc/self/task")
    except OSError:
        return out
    for tid in tids:
        try:
            with open(f"/proc/self/task/{tid}/schedstat") as fh:
                out[int(tid)] = int(fh.read().split()[0])
        except (OSError, ValueError, IndexError):
            continue
    return out


THREAD_GROUPS = ("loop", "parts", "executor", "other")
"""Where a worker's CPU went: the event-loop thread (request set-up, body writes, response
parsing), unistore's part threads (file reads, joins, hashing), asyncio's default executor
(`to_thread`: file writes of downloads, file opens), and the rest (threads of native code, e.g.
obstore's runtime, or threads that ended within the window)."""


def thread_group(native_id: int, loop_id: int, names: Mapping[int, str]) -> str:
    if native_id == loop_id:
        return "loop"
    name = names.get(native_id, "")
    if name.startswith("unistore-parts"):
        return "parts"
    if name.startswith("asyncio_"):
        return "executor"
    return "other"


def cpu_seconds() -> float:
    t = os.times()
    return t.user + t.system


class _RunQueueClock:
    """Run-queue wait (ns) of one thread, from the second field of its schedstat."""

    def __init__(self, tid: int) -> None:
        self._fd: int | None
        try:
            self._fd = os.open(f"/proc/self/task/{tid}/schedstat", os.O_RDONLY)
        except OSError:
            self._fd = None

    def wait_ns(self) -> int:
        if self._fd is None:
            return 0
        os.lseek(self._fd, 0, os.SEEK_SET)
        fields = os.read(self._fd, 128).split()
        return int(fields[1]) if len(fields) > 1 else 0

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


class LoopTicker:
    """Measures how late a 5 ms sleep wakes up on the running loop, raw and without the loop
    thread's run-queue wait."""

    def __init__(self, tick_s: float = TICK_S) -> None:
        self.tick_s = tick_s
        self.max_late_s = 0.0
        self.max_own_s = 0.0
        self.ticks = 0
        self.late_over_50ms = 0
        self._task: asyncio.Task[None] | None = None
        self._clock = _RunQueueClock(threading.get_native_id())

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self._clock.close()

    async def _run(self) -> None:
        clock = self._clock
        while True:
            waited_before = clock.wait_ns()
            began = time.perf_counter()
            await asyncio.sleep(self.tick_s)
            late = time.perf_counter() - began - self.tick_s
            own = late - (clock.wait_ns() - waited_before) / 1e9
            self.ticks += 1
            self.max_late_s = max(self.max_late_s, late)
            self.max_own_s = max(self.max_own_s, own)
            if own > 0.05:
                self.late_over_50ms += 1


class StepClock:
    """The longest single step of the loop (one callback or task step), in loop-thread CPU
    seconds: what issue #5 bounds ("no step blocks the loop for more than a few ms"). The ticker
    above measures lateness, which also adds up many short steps queued in one loop turn.

    It wraps `asyncio.events.Handle._run` while active (two thread-clock reads per step)."""

    def __init__(self) -> None:
        self.max_step_s = 0.0
        self.steps = 0
        self._original: Any = None

    def start(self) -> None:
        original = asyncio.events.Handle._run
        clock = self

        def run(handle: asyncio.events.Handle) -> None:
            began = time.thread_time()
            original(handle)
            took = time.thread_time() - began
            clock.steps += 1
            if took > clock.max_step_s:
                clock.max_step_s = took

        self._original = original
        asyncio.events.Handle._run = run  # type: ignore[method-assign,assignment]

    def stop(self) -> None:
        if self._original is not None:
            asyncio.events.Handle._run = self._original  # type: ignore[method-assign]
            self._original = None


class Probe:
    """`async with Probe(pids) as probe:` around the timed work; `probe.result()` afterwards."""

    def __init__(
        self, server_pids: Mapping[str, int] | None = None, *, ticker: bool = True,
        scaffolding: Callable[[], AbstractContextManager[Any]] = contextlib.nullcontext,
    ) -> None:
        self.server_pids = dict(server_pids or {})
        self._scaffolding = scaffolding
        """Wraps the probe's own /proc readings on the loop thread (`bench_stall.ColdSteps.paused`)."""
        self._ticker = LoopTicker() if ticker else None
        self._steps = StepClock() if ticker else None
        self.wall_s = 0.0
        self.cpu_s = 0.0
        self.server_cpu_s: dict[str, float] = {}
        self.rss_before = 0
        self._t0 = 0.0
        self._cpu0 = 0.0
        self._srv0: dict[str, float] = {}
        self._busy0 = (0.0, 0.0)
        self._loop_cpu0 = 0.0
        self.loop_cpu_s = 0.0
        self.other_cpu_s = 0.0
        self.steal_s = 0.0
        self._threads0: dict[int, int] = {}
        self.thread_cpu_s: dict[str, float] = {}

    async def __aenter__(self) -> Self:
        with self._scaffolding():
            self.rss_before = vm_status("VmRSS")
            self._srv0 = servers_cpu(self.server_pids)
            self._busy0 = machine_busy_seconds()
        if self._ticker is not None:
            self._ticker.start()
            await asyncio.sleep(0)  # let the ticker take its first timestamp
        if self._steps is not None:
            self._steps.start()
        self._threads0 = thread_cpu_ns()
        self._cpu0 = cpu_seconds()
        self._loop_cpu0 = time.thread_time()
        self._t0 = time.perf_counter()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.wall_s = time.perf_counter() - self._t0
        if self._steps is not None:
            self._steps.stop()
        self.cpu_s = cpu_seconds() - self._cpu0
        self.loop_cpu_s = time.thread_time() - self._loop_cpu0
        with self._scaffolding():
            self.thread_cpu_s = self._thread_split(thread_cpu_ns())
            after = servers_cpu(self.server_pids)
            busy, steal = machine_busy_seconds()
        self.server_cpu_s = {name: round(after[name] - self._srv0.get(name, 0.0), 3) for name in after}
        # CPU that neither this worker nor the servers used: other processes on the machine
        self.other_cpu_s = busy - self._busy0[0] - self.cpu_s - sum(self.server_cpu_s.values())
        self.steal_s = steal - self._busy0[1]
        if self._ticker is not None:
            await self._ticker.stop()

    def _thread_split(self, after: Mapping[int, int]) -> dict[str, float]:
        """The window's CPU by `THREAD_GROUPS`; "other" takes what no live thread accounts for
        (threads that ended meanwhile), so the groups add up to `cpu_s`."""
        names = {t.native_id: t.name for t in threading.enumerate() if t.native_id is not None}
        loop_id = threading.get_native_id()
        split = dict.fromkeys(THREAD_GROUPS, 0.0)
        for tid, ns in after.items():
            split[thread_group(tid, loop_id, names)] += (ns - self._threads0.get(tid, 0)) / 1e9
        split["other"] += max(0.0, self.cpu_s - sum(split.values()))
        return {name: round(value, 3) for name, value in split.items()}

    def result(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "thread_cpu_s": self.thread_cpu_s,
            "wall_s": round(self.wall_s, 4),
            "cpu_s": round(self.cpu_s, 3),
            "loop_cpu_s": round(self.loop_cpu_s, 3),
            "server_cpu_s": self.server_cpu_s,
            "rss_before_mib": round(self.rss_before / MiB, 1),
            "peak_rss_mib": round(vm_status("VmHWM") / MiB, 1),
            "cpu_total_s": round(cpu_seconds(), 3),
            "other_cpu_s": round(max(0.0, self.other_cpu_s), 2),
            "steal_s": round(self.steal_s, 2),
        }
        if self._ticker is not None:
            out["stall_ms"] = round(self._ticker.max_late_s * 1000, 1)
            out["stall_own_ms"] = round(max(0.0, self._ticker.max_own_s) * 1000, 1)
            out["ticks"] = self._ticker.ticks
        if self._steps is not None:
            out["step_ms"] = round(self._steps.max_step_s * 1000, 1)
            out["steps"] = self._steps.steps
        return out


def write_scratch(directory: str, size: int = 320 * MiB, block: int = 8 * MiB) -> float:
    """Write `size` bytes to a scratch file and delete it; returns the seconds it took.

    The VMs hand freed memory back to their host, after which the next page-cache writes are
    ten times slower; doing this just before a timed window puts every client on the same footing.
    """
    began = time.perf_counter()
    path = os.path.join(directory, f"scratch-{os.getpid()}.bin")
    buf = b"\x5a" * block
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        written = 0
        while written < size:
            written += os.write(fd, buf)
    finally:
        os.close(fd)
        os.unlink(path)
    return time.perf_counter() - began


@contextlib.contextmanager
def removed_afterwards(path: str) -> Iterator[str]:
    try:
        yield path
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
