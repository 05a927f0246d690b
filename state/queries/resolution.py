"""Chart resolutions: bucket sizes a series can be shown at, and where buckets start.

A bucket of ``level_ms`` holds the candles whose open time falls in it; buckets lie on
Bybit's grid of that length (:mod:`env.intervals`: multiples since the epoch, weeks from
Monday 00:00 UTC), so the same bucket always holds the same candles and an old bucket never
changes.
"""

from __future__ import annotations

from env.intervals import GRIDS, MONDAY_MS, WEEK_MS

LEVELS_MS: tuple[int, ...] = tuple(sorted(g.step_ms for g in GRIDS.values() if g.step_ms is not None))
"""Every bucket size a chart offers, finest first (Bybit's fixed intervals, 1m to 1w)."""


def levels_for(interval_ms: int) -> list[int]:
    """The resolutions a series of ``interval_ms`` candles can be shown at: itself and every
    coarser level that is a whole multiple of it."""
    return [interval_ms] + [level for level in LEVELS_MS if level > interval_ms and level % interval_ms == 0]


def bucket_start(time_ms: int, level_ms: int) -> int:
    """The start of the bucket of ``level_ms`` holding ``time_ms``."""
    offset = MONDAY_MS if level_ms == WEEK_MS else 0
    return (time_ms - offset) // level_ms * level_ms + offset


def bucket_sql(column: str, level_ms: int) -> str:
    """SQL for :func:`bucket_start` of ``column`` (``level_ms`` is an int from :data:`LEVELS_MS`
    or a series' interval, never user text)."""
    level = int(level_ms)
    offset = MONDAY_MS if level == WEEK_MS else 0
    return f"(({column} - {offset}) / {level} * {level} + {offset})"
