"""The live progress table of many jobs (trials of a search, symbols of a training).

:class:`Board` records every job's status and result as plain data (what tests check) and
renders itself as a rich table for :class:`rich.live.Live`: running jobs, the latest
finished ones, counts by status and the best result so far.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Literal

from rich.console import Console, JustifyMethod
from rich.live import Live
from rich.table import Table

Status = Literal["queued", "running", "done", "pruned", "failed"]
STYLES: dict[str, str] = {"running": "yellow", "done": "green", "pruned": "dim", "failed": "bold red"}
SHOWN_FINISHED = 15
"""Finished rows kept on screen (all are kept in :attr:`Board.rows`)."""


@dataclass
class Row:
    key: str
    status: Status = "queued"
    value: float | None = None
    detail: str = ""
    started_s: float | None = None
    elapsed_s: float | None = None


@dataclass
class Board:
    """Progress of a set of jobs.

    Args:
        title: heading of the table.
        value_label: what ``value`` means (``score``, ``final reward`` ...).
        higher_is_better: decides the "best so far".
        clock: injectable for tests.
    """

    title: str
    value_label: str = "value"
    higher_is_better: bool = True
    clock: Callable[[], float] = time.monotonic
    rows: dict[str, Row] = field(default_factory=dict)

    def add(self, key: str, detail: str = "") -> None:
        self.rows[key] = Row(key, detail=detail)

    def start(self, key: str, detail: str | None = None) -> None:
        row = self.rows.setdefault(key, Row(key))
        row.status, row.started_s = "running", self.clock()
        if detail is not None:
            row.detail = detail

    def finish(self, key: str, status: Status, value: float | None = None, detail: str | None = None) -> None:
        row = self.rows.setdefault(key, Row(key))
        row.status, row.value = status, value
        row.elapsed_s = self.clock() - row.started_s if row.started_s is not None else None
        if detail is not None:
            row.detail = detail

    def counts(self) -> Counter[str]:
        return Counter(row.status for row in self.rows.values())

    def best(self) -> Row | None:
        scored = [(row.value, row) for row in self.rows.values() if row.status == "done" and row.value is not None]
        if not scored:
            return None
        return (max if self.higher_is_better else min)(scored, key=lambda scored_row: scored_row[0])[1]

    def __rich__(self) -> Table:
        counts = self.counts()
        best = self.best()
        caption = "  ".join(f"{status} {counts[status]}" for status in ("running", "done", "pruned", "failed", "queued")
                            if counts[status])
        if best is not None:
            caption += f"   best so far: {best.key} ({self.value_label} {best.value:.4g})"
        table = Table(title=self.title, caption=caption, title_justify="left", caption_justify="left")
        columns: tuple[tuple[str, JustifyMethod], ...] = (
            ("job", "left"), ("status", "left"), (self.value_label, "right"), ("time", "right"), ("details", "left"))
        for column, justify in columns:
            table.add_column(column, justify=justify, overflow="fold")
        finished = [r for r in self.rows.values() if r.status in ("done", "pruned", "failed")][-SHOWN_FINISHED:]
        shown = [r for r in self.rows.values() if r.status in ("running", "queued")] + finished
        now = self.clock()
        for row in shown:
            elapsed = row.elapsed_s if row.elapsed_s is not None else (
                now - row.started_s if row.started_s is not None else None)
            table.add_row(
                row.key, row.status, "" if row.value is None else f"{row.value:.4g}",
                "" if elapsed is None else f"{elapsed:.0f} s", row.detail, style=STYLES.get(row.status),
            )
        return table


@contextmanager
def live(board: Board, enabled: bool = True, console: Console | None = None) -> Iterator[Board]:
    """Show ``board`` on stderr, refreshed twice a second, while the block runs (and once
    more, final, when it ends); ``enabled=False`` shows nothing."""
    if not enabled:
        yield board
        return
    with Live(board, console=console or Console(stderr=True), refresh_per_second=2):
        yield board
