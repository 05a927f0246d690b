"""Coarse bars of a whole series, computed once and kept: what makes zooming out cheap.

Showing a year of minute candles as daily bars reads every candle once (about a second
for a million). Candles and equity rows are only ever appended, and a bar of a resolution
always holds the same rows (:mod:`state.queries.resolution`), so every bar but the newest
is final: the cache keeps a series' bars per resolution and, when the series has grown,
recomputes only from its newest bar on. Finer resolutions are not cached: a window of
them reads few rows.
"""

from __future__ import annotations

import bisect
import sqlite3
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any

from state.queries.resolution import bucket_start

CACHED_FROM_FACTOR = 30
"""Resolutions at least this many candles per bar are cached; finer ones are read directly."""

Compute = Callable[[sqlite3.Connection, int, int], Sequence[tuple[Any, ...]]]
"""``compute(conn, start_ms, end_ms)``: rows whose first item is the bar start, oldest first."""


@dataclass
class _Entry:
    rows: list[tuple[Any, ...]] = field(default_factory=list)
    times: list[int] = field(default_factory=list)
    through_ms: int | None = None  # the series' last time when the rows were computed
    lock: threading.Lock = field(default_factory=threading.Lock)


class BarCache:
    """Per ``key`` (a series at a resolution), its bars from ``first_ms`` on.

    Args:
        max_entries: series-resolutions kept; the least recently used go first.
    """

    def __init__(self, max_entries: int = 64) -> None:
        self.max_entries = max_entries
        self._entries: OrderedDict[Hashable, _Entry] = OrderedDict()
        self._lock = threading.Lock()
        self.computed_rows = 0  # rows computed so far (tests and benchmarks read it)

    def window(self, key: Hashable, conn: sqlite3.Connection, compute: Compute, *, level_ms: int, first_ms: int,
               last_ms: int, start_ms: int, end_ms: int) -> list[tuple[Any, ...]]:
        """The bars starting in ``[start_ms, end_ms]`` of a series that spans
        ``[first_ms, last_ms]`` now (``last_ms`` only grows)."""
        with self._lock:
            entry = self._entries.pop(key, None) or _Entry()
            self._entries[key] = entry
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)
        with entry.lock:
            if entry.through_ms is None:
                self._extend(entry, conn, compute, first_ms, last_ms)
            elif last_ms > entry.through_ms:
                self._extend(entry, conn, compute, bucket_start(entry.through_ms, level_ms), last_ms)
            lo = bisect.bisect_left(entry.times, bucket_start(start_ms, level_ms))
            hi = bisect.bisect_right(entry.times, end_ms)
            return entry.rows[lo:hi]

    def _extend(self, entry: _Entry, conn: sqlite3.Connection, compute: Compute, from_ms: int, last_ms: int) -> None:
        cut = bisect.bisect_left(entry.times, from_ms)
        fresh = list(compute(conn, from_ms, last_ms))
        self.computed_rows += len(fresh)
        entry.rows[cut:] = fresh
        entry.times[cut:] = [row[0] for row in fresh]
        entry.through_ms = last_ms
