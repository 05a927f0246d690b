"""Chart resolutions: bucket sizes a series can be shown at, and where buckets start.

A bucket of ``level_ms`` holds the candles whose open time falls in it; buckets start at
multiples of ``level_ms`` since the epoch (weeks on Mondays, as exchanges draw them), so
the same bucket always holds the same candles and an old bucket never changes.
"""

from __future__ import annotations

MINUTE_MS = 60_000
DAY_MS = 1440 * MINUTE_MS
WEEK_MS = 7 * DAY_MS
_MONDAY_OFFSET_MS = 4 * DAY_MS  # 1970-01-01 was a Thursday; 1970-01-05 a Monday

LEVELS_MS: tuple[int, ...] = tuple(m * MINUTE_MS for m in (1, 3, 5, 15, 30, 60, 120, 240, 360, 720, 1440, 10_080))
"""Every bucket size a chart offers, finest first (Bybit's intervals from 1m to 1w)."""


def levels_for(interval_ms: int) -> list[int]:
    """The resolutions a series of ``interval_ms`` candles can be shown at: itself and every
    coarser level that is a whole multiple of it."""
    return [interval_ms] + [level for level in LEVELS_MS if level > interval_ms and level % interval_ms == 0]


def bucket_start(time_ms: int, level_ms: int) -> int:
    """The start of the bucket of ``level_ms`` holding ``time_ms``."""
    offset = _MONDAY_OFFSET_MS if level_ms == WEEK_MS else 0
    return (time_ms - offset) // level_ms * level_ms + offset


def bucket_sql(column: str, level_ms: int) -> str:
    """SQL for :func:`bucket_start` of ``column`` (``level_ms`` is an int from :data:`LEVELS_MS`
    or a series' interval, never user text)."""
    level = int(level_ms)
    offset = _MONDAY_OFFSET_MS if level == WEEK_MS else 0
    return f"(({column} - {offset}) / {level} * {level} + {offset})"
