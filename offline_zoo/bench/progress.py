"""The live view of a running suite: runs done / running / queued / failed and each run's progress.

On a terminal it is a rich live display (one bar for the suite, one per running run with its step
and last evaluation score); elsewhere (CI logs, files) one line per finished run.

Examples:
    >>> view = ProgressView(total=3, done=1, suite="smoke", enabled=False, say=print)
    >>> with view:
    ...     view.handle({"type": "start", "run_id": "a", "name": "reacher2d-medium 1 DT s0", "total": 100})
    ...     view.handle({"type": "end", "run_id": "a", "name": "reacher2d-medium 1 DT s0", "status": "finished", "score": 12.5})
    [2/3] finished  reacher2d-medium 1 DT s0  score 12.5
"""

from __future__ import annotations

import sys
import time
from typing import Callable

__all__ = ["ProgressView"]


class ProgressView:
    """Consumes executor events (``start`` / ``progress`` / ``end``); see the module docstring.

    Args:
        total: runs of the suite.
        done: runs already finished (a resumed suite).
        suite: the suite's name (shown in the live view).
        enabled: a rich live view (True), one line per finished run through ``say`` (False), or
            None: a live view when stdout is a terminal.
        say: where the lines go when the live view is off.

    Examples:
        >>> lines = []
        >>> view = ProgressView(total=3, done=1, enabled=False, say=lines.append)
        >>> with view:
        ...     view.handle({"type": "start", "run_id": "b", "name": "hopper-medium 0.1 CQL s0", "total": 100})
        ...     view.handle({"type": "progress", "run_id": "b", "step": 50})
        ...     view.running["b"]["step"], view.queued
        (50, 1)
        >>> with view:
        ...     view.handle({"type": "end", "run_id": "b", "status": "failed", "error": "RuntimeError: NaN loss"})
        ...     view.handle({"type": "end", "run_id": "b", "status": "failed"})    # repeated: ignored
        >>> lines, view.failed
        (['[2/3] failed  hopper-medium 0.1 CQL s0: RuntimeError: NaN loss'], 1)
    """

    def __init__(self, total: int, done: int = 0, suite: str = "", enabled: bool | None = None, say: Callable[[str], None] = print):
        self.total = int(total)
        self.done = int(done)
        self.failed = 0
        self.suite = suite
        self.say = say
        self.enabled = sys.stdout.isatty() if enabled is None else bool(enabled)
        self.running: dict[str, dict] = {}
        self._ended: set[str] = set()
        self._progress = None
        self._tasks: dict[str, int] = {}
        self._t0 = time.monotonic()

    @property
    def queued(self) -> int:
        """Runs neither finished, failed nor running."""
        return max(0, self.total - self.done - self.failed - len(self.running))

    def _summary(self) -> str:
        return f"[bold]{self.suite}[/bold]: {self.done} done · {len(self.running)} running · {self.queued} queued" + (f" · [red]{self.failed} failed[/red]" if self.failed else "")

    def __enter__(self) -> "ProgressView":
        if self.enabled:
            self._progress = _suite_progress()
            self._progress.start()
            self._suite_task = self._progress.add_task(self._summary(), total=self.total, completed=self.done + self.failed, info="")
        return self

    def __exit__(self, *exc) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
        return None

    def handle(self, ev: dict) -> None:
        """Update the view with one event (idempotent for repeated start / end events)."""
        kind, rid = ev.get("type"), ev.get("run_id")
        if rid is None or rid in self._ended:
            return
        if kind == "start":
            if rid not in self.running:
                self.running[rid] = {"name": ev.get("name", rid), "total": ev.get("total") or 1, "step": 0}
                if self._progress is not None:
                    self._tasks[rid] = self._progress.add_task(f"  {ev.get('name', rid)}", total=ev.get("total") or 1, info="")
        elif kind == "progress":
            r = self.running.get(rid)
            if r is None:
                return
            r["step"] = ev.get("step", r["step"])
            if self._progress is not None and rid in self._tasks:
                score = ev.get("score")
                self._progress.update(self._tasks[rid], completed=r["step"], info=f"score {score:.1f}" if isinstance(score, (int, float)) else "")
        elif kind == "note":
            msg = f"note: {ev.get('message', '')}"
            if self._progress is not None:
                self._progress.console.print(msg, style="yellow", markup=False, highlight=False)
            else:
                self.say(msg)
        elif kind == "end":
            self._ended.add(rid)
            r = self.running.pop(rid, None)
            name = ev.get("name") or (r or {}).get("name", rid)
            ok = ev.get("status") == "finished"
            if ok:
                self.done += 1
            else:
                self.failed += 1
            if self._progress is not None and rid in self._tasks:
                self._progress.remove_task(self._tasks.pop(rid))
            n = self.done + self.failed
            if ok:
                score = ev.get("score")
                msg = f"[{n}/{self.total}] finished  {name}" + (f"  score {score:.1f}" if isinstance(score, (int, float)) else "")
            else:
                msg = f"[{n}/{self.total}] {ev.get('status', 'failed')}  {name}: {ev.get('error', '')}"
            if self._progress is not None:
                self._progress.console.print(msg, style=None if ok else "red", markup=False, highlight=False)
            else:
                self.say(msg)
        if self._progress is not None:
            self._progress.update(self._suite_task, description=self._summary(), completed=self.done + self.failed)


def _suite_progress(console=None):
    """The suite's bars sized for the terminal: step counts ``n/total``, times and scores are never
    cut; the run names give way (ellipsis) on narrow terminals."""
    from rich import get_console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
    from rich.table import Column

    width = (console or get_console()).width
    bar_w, steps_w, time_w, info_w = 12, 13, 7, 10  # "100000/100000", "0:00:00", "score 99.9"
    name_w = max(8, width - (bar_w + steps_w + time_w + info_w + 4))  # 4 spaces between 5 columns
    return Progress(
        TextColumn("{task.description}", table_column=Column(no_wrap=True, overflow="ellipsis", max_width=name_w)),
        BarColumn(bar_width=bar_w), MofNCompleteColumn(table_column=Column(no_wrap=True, min_width=steps_w)),
        TimeElapsedColumn(table_column=Column(no_wrap=True, min_width=time_w)),
        TextColumn("{task.fields[info]}", table_column=Column(no_wrap=True, min_width=info_w)),
        refresh_per_second=4, console=console,
    )
