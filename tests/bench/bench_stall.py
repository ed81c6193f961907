"""The longest loop step of a whole user-visible operation, and where its time went (issue #22).

`ColdSteps` is installed before the worker's event loop runs its first step and stays until
the loop is done: client creation, the first request, the timed work and the close all count,
as a user's bot pays them. A step is one `asyncio.events.Handle._run` (a callback, or one
step of a task), measured in loop-thread CPU (`time.thread_time`), so neither the run-queue
wait of a shared machine nor time blocked in a system call counts; only work the process did
on the loop thread. The bench's own scaffolding on the loop thread (scratch writes, /proc
readings, the result line) runs under `paused()` and is subtracted from the step it falls in.

With `sample=True` a thread samples the loop thread's stack (`sys._current_frames`) while a
step has run longer than `SAMPLE_AFTER_S`; the `keep` slowest steps keep their samples, folded
into the functions seen most often (innermost frame, and the innermost frame of our own code or
of an SDK), which is the evidence of what a long step did. The sampler needs the GIL, which the
loop thread gives up every `sys.getswitchinterval()` (5 ms): a 100 ms step yields ~20 samples.

Standard library only.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from types import FrameType
from typing import Any

SAMPLE_AFTER_S = 0.002
SAMPLE_EVERY_S = 0.001
KEEP = 5


@dataclass
class Step:
    cpu_s: float
    what: str
    samples: list[tuple[str, ...]] = field(default_factory=list)

    def summary(self, top: int = 4) -> dict[str, Any]:
        out: dict[str, Any] = {"ms": round(self.cpu_s * 1000, 1), "callback": self.what[:200]}
        if self.samples:
            out["samples"] = len(self.samples)
            inner = collections.Counter(stack[0] for stack in self.samples)
            out["innermost"] = [[name, n] for name, n in inner.most_common(top)]
            ours = collections.Counter(_first_of_interest(stack) for stack in self.samples)
            out["in"] = [[name, n] for name, n in ours.most_common(top)]
            out["stack"] = list(collections.Counter(self.samples).most_common(1)[0][0][:25])
        return out


_INTEREST = ("unistore", "aiobotocore", "botocore", "aioboto3", "boto3", "azure", "aiohttp", "obstore", "tests")


def _first_of_interest(stack: tuple[str, ...]) -> str:
    """The innermost frame of our code or of an SDK (skipping the stdlib: json, importlib, ...)."""
    for name in stack:
        if name.split(":", 1)[0].split("/")[0] in _INTEREST:
            return name
    return stack[-1] if stack else "?"


def _where(frame: FrameType) -> str:
    path = frame.f_code.co_filename
    for marker in ("/site-packages/", "/lib/python3."):
        if marker in path:
            path = path.split(marker, 1)[1]
            if marker == "/lib/python3.":
                path = "stdlib:" + path.split("/", 1)[-1]
            break
    else:
        if "/unistore/" in path:
            path = "unistore/" + path.rsplit("/unistore/", 1)[1]
        elif "/tests/" in path:
            path = "tests/" + path.rsplit("/tests/", 1)[1]
    return f"{path}:{frame.f_lineno} {frame.f_code.co_name}"


def _stack(frame: FrameType | None, depth: int = 60) -> tuple[str, ...]:
    out: list[str] = []
    while frame is not None and len(out) < depth:
        out.append(_where(frame))
        frame = frame.f_back
    return tuple(out)


def describe(handle: asyncio.events.Handle) -> str:
    """What a handle runs: the task's coroutine and where it is suspended, or the callback."""
    callback = getattr(handle, "_callback", None)
    task = getattr(callback, "__self__", None)
    if isinstance(task, asyncio.Task):
        coro = task.get_coro()
        frame = getattr(coro, "cr_frame", None)
        where = f" at {_where(frame)}" if frame is not None else ""
        return f"task step {getattr(coro, '__qualname__', coro)!r}, then waiting{where}"
    return repr(handle)


class ColdSteps:
    """Wraps `Handle._run` from `start()` to `stop()`: the longest step and the `keep` slowest."""

    def __init__(self, *, sample: bool = False, keep: int = KEEP) -> None:
        self.max_step_s = 0.0
        self.steps = 0
        self.create_s = 0.0
        """Loop-thread CPU of the client constructors (`created()`), part of the step they fall in."""
        self.keep = keep
        self.slowest: list[Step] = []
        self._sample = sample
        self._original: Any = None
        self._paused_s = 0.0
        self._pause_began: float | None = None
        # sampler state: (step number, wall clock at its start) while a step runs
        self._current: tuple[int, float] | None = None
        self._samples: list[tuple[str, ...]] = []
        self._loop_thread = 0
        self._stop = threading.Event()
        self._sampler: threading.Thread | None = None

    def start(self) -> None:
        original = asyncio.events.Handle._run
        clock = self
        self._loop_thread = threading.get_ident()

        def run(handle: asyncio.events.Handle) -> None:
            clock._paused_s = 0.0
            if clock._sample:
                clock._samples = []
                clock._current = (clock.steps, time.perf_counter())
            began = time.thread_time()
            try:
                original(handle)
            finally:
                took = time.thread_time() - began - clock._paused_s
                clock._current = None
                clock.steps += 1
                clock.max_step_s = max(clock.max_step_s, took)
                if len(clock.slowest) < clock.keep or took > clock.slowest[-1].cpu_s:
                    clock._record(handle, took)

        self._original = original
        asyncio.events.Handle._run = run  # type: ignore[method-assign,assignment]
        if self._sample:
            self._sampler = threading.Thread(target=self._sample_loop, name="bench-step-sampler", daemon=True)
            self._sampler.start()

    def _record(self, handle: asyncio.events.Handle, took: float) -> None:
        step = Step(took, describe(handle), self._samples)
        self._samples = []
        self.slowest.append(step)
        self.slowest.sort(key=lambda s: s.cpu_s, reverse=True)
        del self.slowest[self.keep :]

    def _sample_loop(self) -> None:
        while not self._stop.wait(SAMPLE_EVERY_S):
            current = self._current
            if current is None or time.perf_counter() - current[1] < SAMPLE_AFTER_S:
                continue
            frame = sys._current_frames().get(self._loop_thread)
            # the step may have ended while we waited for the GIL
            if frame is not None and self._current is current and self._pause_began is None:
                self._samples.append(_stack(frame))

    def stop(self) -> None:
        if self._original is not None:
            asyncio.events.Handle._run = self._original  # type: ignore[method-assign]
            self._original = None
        self._stop.set()
        if self._sampler is not None:
            self._sampler.join()
            self._sampler = None

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """Bench scaffolding run on the loop thread: not counted in the step it falls in."""
        began = time.thread_time()
        self._pause_began = began
        try:
            yield
        finally:
            self._pause_began = None
            self._paused_s += time.thread_time() - began

    @contextlib.contextmanager
    def created(self) -> Iterator[None]:
        """Around a synchronous client constructor (`Storage.from_env()`, `S3Store(...)`): its
        loop-thread CPU, reported apart because an application may call it before its loop."""
        began = time.thread_time()
        try:
            yield
        finally:
            self.create_s += time.thread_time() - began

    def result(self) -> dict[str, Any]:
        return {
            "cold_step_ms": round(self.max_step_s * 1000, 1),
            "cold_create_ms": round(self.create_s * 1000, 1),
            "cold_steps": self.steps,
            "cold_slowest": [s.summary() for s in self.slowest],
        }
