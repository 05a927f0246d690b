"""Where candles open: the grid of each candle interval, weeks and months included.

Bybit opens a candle of up to a day at a whole multiple of its length since the epoch
(UTC), but its weeks open on **Monday 00:00 UTC** (the epoch, 1970-01-01, was a Thursday,
so multiples of 7 days would be Thursdays) and its months on **the 1st at 00:00 UTC**
(28 to 31 days long). A :class:`CandleGrid` numbers the opens of one interval
(..., -1, 0, 1, ...) and converts both ways, so every rule that steps from one candle to
the next (which candles have closed, gaps, backfill windows, the live sequencer) is the
same code for a minute, a week and a month.

Names are Shadow's and ccxt's timeframes (``1m`` ... ``1d``, ``1w``, ``1M``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

MINUTE_MS = 60_000
DAY_MS = 1440 * MINUTE_MS
WEEK_MS = 7 * DAY_MS
MONDAY_MS = 4 * DAY_MS  # 1970-01-05 00:00 UTC, the first Monday: Bybit's weekly grid
MONTH_NOMINAL_MS = 2_629_746_000  # a Gregorian year (365.2425 days) / 12
MONTH_LONGEST_MS = 31 * DAY_MS

TimesMs = npt.NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class CandleGrid:
    """The open times of one candle interval.

    Attributes:
        name: the timeframe (``"1m"``, ``"1w"``, ``"1M"``), or ``"<n>ms"`` for a spacing
            read from data that is no exchange interval.
        step_ms: the fixed length; ``None`` for calendar months.
        anchor_ms: an open time of the grid (fixed lengths): 0 for Bybit's intervals up to
            a day, the first Monday for weeks.

    .. warning:: ``open + step`` is the next open only for fixed lengths; use
       :meth:`shift` (or :meth:`close_ms`) so a month ends where the next month begins.
    """

    name: str
    step_ms: int | None
    anchor_ms: int = 0

    # -- numbering: the one place that knows what a month is -----------------------
    def indices(self, times_ms: npt.ArrayLike) -> TimesMs:
        """Number of the candle that contains each time (floor onto the grid)."""
        times = np.asarray(times_ms, dtype=np.int64)
        if self.step_ms is None:
            return times.astype("datetime64[ms]").astype("datetime64[M]").astype(np.int64)
        return (times - self.anchor_ms) // self.step_ms

    def opens_ms(self, indices: npt.ArrayLike) -> TimesMs:
        """Open time of each numbered candle."""
        numbers = np.asarray(indices, dtype=np.int64)
        if self.step_ms is None:
            return numbers.astype("datetime64[M]").astype("datetime64[ms]").astype(np.int64)
        return self.anchor_ms + numbers * self.step_ms

    def index(self, time_ms: int) -> int:
        """Number of the candle that contains ``time_ms``."""
        return int(self.indices(np.int64(time_ms)))

    def open_ms(self, index: int) -> int:
        """Open time of candle number ``index``."""
        return int(self.opens_ms(np.int64(index)))

    # -- what callers use ---------------------------------------------------------------
    def floor(self, time_ms: int) -> int:
        """Open time of the candle that contains ``time_ms``."""
        return self.open_ms(self.index(time_ms))

    def shift(self, open_ms: int, candles: int) -> int:
        """The open ``candles`` candles after (negative: before) the one at ``open_ms``."""
        return self.open_ms(self.index(open_ms) + candles)

    def close_ms(self, open_ms: int) -> int:
        """When the candle opened at ``open_ms`` closes: the next candle's open."""
        return self.shift(open_ms, 1)

    def steps(self, first_ms: int, last_ms: int) -> int:
        """How many candles ``last_ms`` is after ``first_ms`` (0 for the same candle)."""
        return self.index(last_ms) - self.index(first_ms)

    def on_grid(self, time_ms: int) -> bool:
        """Whether a candle of this interval opens at ``time_ms``."""
        return self.floor(time_ms) == time_ms

    def off_grid(self, times_ms: npt.ArrayLike) -> npt.NDArray[np.bool_]:
        """Which of ``times_ms`` are no candle's open time."""
        times = np.asarray(times_ms, dtype=np.int64)
        off: npt.NDArray[np.bool_] = self.opens_ms(self.indices(times)) != times
        return off

    def range_ms(self, first_ms: int, last_ms: int) -> TimesMs:
        """Every open from the candle of ``first_ms`` to the candle of ``last_ms``, inclusive."""
        return self.opens_ms(np.arange(self.index(first_ms), self.index(last_ms) + 1, dtype=np.int64))

    def newest_closed_open_ms(self, now_ms: int) -> int:
        """Open time of the newest candle closed at ``now_ms`` (its close ``<= now_ms``).

        ``now_ms`` should be the *exchange's* clock (Bybit's ``/v5/market/time``): a local
        clock a few hundred ms fast would let a half-formed candle pass for closed, and a
        replay server's virtual clock is not the local one.
        """
        return self.shift(self.floor(now_ms), -1)

    @property
    def nominal_ms(self) -> int:
        """The length of a candle; a month's is the mean Gregorian month (for rates per year)."""
        return MONTH_NOMINAL_MS if self.step_ms is None else self.step_ms

    @property
    def longest_ms(self) -> int:
        """The longest a candle can be (31 days for months): for "is it late?" limits."""
        return MONTH_LONGEST_MS if self.step_ms is None else self.step_ms

    def describe(self) -> str:
        """How the grid is laid out, for messages: ``"1w (Monday 00:00 UTC)"``."""
        if self.step_ms is None:
            return f"{self.name} (the 1st of each month, 00:00 UTC)"
        if self.step_ms == WEEK_MS and self.anchor_ms == MONDAY_MS:
            return f"{self.name} (Monday 00:00 UTC)"
        return self.name if self.name in GRIDS else f"{self.step_ms / 1000:g} s"


def _fixed(name: str, step_ms: int, anchor_ms: int = 0) -> CandleGrid:
    return CandleGrid(name, step_ms, anchor_ms)


GRIDS: dict[str, CandleGrid] = {
    grid.name: grid
    for grid in (
        *(_fixed(f"{n}m", n * MINUTE_MS) for n in (1, 3, 5, 15, 30)),
        *(_fixed(f"{n}h", n * 60 * MINUTE_MS) for n in (1, 2, 4, 6, 12)),
        _fixed("1d", DAY_MS),
        _fixed("1w", WEEK_MS, MONDAY_MS),
        CandleGrid("1M", None),
    )
}
"""Bybit's intervals by their timeframe name, each on Bybit's grid."""


def grid(name: str) -> CandleGrid:
    """The grid of timeframe ``name`` (``"1m"`` ... ``"1M"``).

    Raises:
        ValueError: an unknown name, with the known ones.
    """
    try:
        return GRIDS[name]
    except KeyError:
        raise ValueError(f"unknown interval {name!r}; use one of {' '.join(GRIDS)}") from None


def infer_grid(open_time_ms: npt.ArrayLike) -> CandleGrid:
    """The grid a sorted series of open times was drawn on.

    Calendar months when every spacing is 28 to 31 days and every time is a month's
    start; otherwise the most common spacing: Bybit's grid of that length when every time
    is on it, else a grid of that spacing through the first time (so a file's own layout
    is judged by its spacing, as before weekly grids were anchored).
    """
    times = np.asarray(open_time_ms, dtype=np.int64)
    diffs = np.diff(times)
    diffs = diffs[diffs > 0]
    month = GRIDS["1M"]
    if len(diffs) and ((diffs >= 28 * DAY_MS) & (diffs <= MONTH_LONGEST_MS)).all() and not month.off_grid(times).any():
        return month
    if len(diffs) == 0:
        step = MINUTE_MS
    else:
        values, counts = np.unique(diffs, return_counts=True)
        step = int(values[np.argmax(counts)])
    for known in GRIDS.values():
        if known.step_ms == step and not known.off_grid(times).any():
            return known
    return CandleGrid(f"{step}ms", step, int(times[0]) % step if len(times) else 0)
