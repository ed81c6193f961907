"""Upload progress: one bar per provider on a terminal, plain lines otherwise, nothing in JSON.

Providers call the `ProgressCallback` (`provider, bytes done, total`) on the event loop as parts
complete, so a single put reports once, at its end. The bars are rich's (`unistore[cli]`) and
drawn only when stdout is a terminal; without rich, or into a pipe or a log, a line is printed
each time a provider passes another quarter of the file, which stays readable in `kubectl logs`.
"""

from __future__ import annotations

from collections.abc import Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Self

from ._cli_output import Output, human_size

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress, Task, TaskID

QUARTERS = 4


class UploadProgress:
    """Shows nothing (the `--json` mode); the base of the two that do."""

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __call__(self, provider: str, done: int, total: int | None) -> None:
        pass

    def finish(self, provider: str, ok: bool) -> None:
        """Mark a provider's upload as done or failed."""

    def close(self) -> None:
        pass


class ProgressLines(UploadProgress):
    """`s3: 25% (4.0 MiB of 16.0 MiB)` each time a provider passes a quarter (not the last one:
    the outcome line says it)."""

    def __init__(self, output: Output, names: Sequence[str]) -> None:
        self.output = output
        self.shown = dict.fromkeys(names, 0)

    def __call__(self, provider: str, done: int, total: int | None) -> None:
        if not total or done >= total:
            return
        quarter = min(QUARTERS * done // total, QUARTERS - 1)
        if quarter > self.shown.get(provider, 0):
            self.shown[provider] = quarter
            self.output.line(f"{provider}: {100 * done // total}% ({human_size(done)} of {human_size(total)})")


class ProgressBars(UploadProgress):
    """One rich bar per provider, left on screen when the upload ends."""

    def __init__(self, console: Console, names: Sequence[str], total: int | None) -> None:
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TaskProgressColumn,
            TextColumn,
            TimeRemainingColumn,
        )

        width = max(len(n) for n in names)
        self.bars: Progress = Progress(
            TextColumn(f"{{task.description:<{width}}}"),
            BarColumn(),
            TaskProgressColumn(),
            DownloadColumn(binary_units=True),
            TextColumn("{task.fields[speed]}"),
            TimeRemainingColumn(),
            TextColumn("{task.fields[status]}"),
            console=console,
        )
        self.tasks: dict[str, TaskID] = {
            name: self.bars.add_task(name, total=total, status="", speed="") for name in names
        }

    def __enter__(self) -> Self:
        self.bars.start()
        return self

    def _task(self, task_id: TaskID) -> Task:
        return next(task for task in self.bars.tasks if task.id == task_id)

    def __call__(self, provider: str, done: int, total: int | None) -> None:
        task = self.tasks.get(provider)
        if task is not None:
            self.bars.update(task, completed=done, total=total)
            speed = self._task(task).speed
            if speed:
                self.bars.update(task, speed=f"{human_size(int(speed))}/s")

    def finish(self, provider: str, ok: bool) -> None:
        task = self.tasks.get(provider)
        if task is None:
            return
        if ok:
            state = self._task(task)
            self.bars.update(task, total=state.total or state.completed, completed=state.total or state.completed,
                             status="[green]done")
        else:
            self.bars.update(task, status="[red]failed")

    def close(self) -> None:
        self.bars.stop()


def upload_progress(output: Output, names: Sequence[str], total: int | None) -> UploadProgress:
    """Bars on a terminal with rich, lines otherwise, nothing with `--json`."""
    if output.json_mode:
        return UploadProgress()
    console = output.console
    if console is not None:
        return ProgressBars(console, names, total)
    return ProgressLines(output, names)
