"""Perpetual funding: when it is due, which rate applies, and how a candle file carries it.

A linear perpetual position pays or receives funding at every funding time of its
instrument (every 8 h for most Bybit symbols; 4 h, 2 h or 1 h for some). Bybit's funding
fee is ``position value x funding rate``, and with a positive rate longs pay shorts. The
account charges it in :meth:`env.portfolio.Portfolio.apply_funding`, called by the one
money step (:meth:`env.execution.Account.mark`) for the env, the backtester and the live
engine alike. Spot has no funding.

**When.** Funding settled at time ``T`` is charged to the position held *into* ``T``: the
position over the candle whose close is ``T`` (``open < T <= close``), at that candle's
mark, before the decision taken at its close. The decision fills after the settlement, so
a position opened at a funding time pays nothing for it and one closed then pays.

**At which price.** Bybit charges on its mark price (an index-based fair price) at ``T``;
without a mark-price feed, the honest proxy is the price at ``T``: the close of the candle
that ends at ``T``, the price the account is marked at anyway.

**Candle files** carry funding in a ``funding_rate`` column (:data:`FUNDING_RATE_COLUMN`):
on the row whose open time is a funding time ``T``, the rate settled at ``T``; ``0`` on every
other row. Every row has a value, so an empty cell is a gap in the data, never "no
funding". With candles longer than the funding interval (12 h or 1 d candles, 8 h funding),
a row holds the sum of the rates settled since the previous row's open, charged at once at
the close of the candle that ends at that row's open.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

FUNDING_RATE_COLUMN = "funding_rate"
"""The optional candle-file column (see the module docstring)."""

MAX_FUNDING_RATE = 0.05
"""The largest rate magnitude per funding time Shadow accepts: 5%. Bybit caps each
symbol's rate far below it (typically 0.375% to 2% per funding time), so a larger value
is a unit error (a percentage where a fraction belongs) or corrupt data."""


class FundingRate(NamedTuple):
    """The funding settled at a candle's close: the rate due and when it settled."""

    time_ms: int
    """The funding time (epoch ms): the close of the candle it is charged in."""
    rate: float
    """Fraction of the position value (0.0001 = 0.01%); positive: longs pay shorts."""


class FundingPayment(NamedTuple):
    """One funding charge on an open position: recorded as a funding event, not a fill or a trade."""

    time_ms: int
    """The funding time."""
    rate: float
    price: float
    """The price the position was valued at: the close of the candle ending at ``time_ms``."""
    side: int
    """The position's side (+1 long, -1 short)."""
    qty: float
    amount: float
    """``side x qty x price x rate``, moved out of cash: positive when paid, negative when received."""


def funding_due_by_candle(open_times_ms: npt.NDArray[np.int64],
                          rates: npt.NDArray[np.float64]) -> list[FundingRate | None]:
    """Per candle of a series, the funding due at its close, from the series' ``funding_rate``
    column: row ``t + 1``'s rate (settled at its open, which is candle ``t``'s close), or
    ``None`` where there is none (rate 0, or the last candle, whose close is not in the data).

    Args:
        open_times_ms: the candles' open times, gap-free.
        rates: the ``funding_rate`` column, validated (:func:`funding_rate_problem`).
    """
    due: list[FundingRate | None] = [None] * len(rates)
    for t in np.flatnonzero(rates[1:]).tolist():
        due[t] = FundingRate(int(open_times_ms[t + 1]), float(rates[t + 1]))
    return due


def funding_rate_column(open_times_ms: npt.NDArray[np.int64], interval_ms: int,
                        settlements: Iterable[tuple[int, float]]) -> npt.NDArray[np.float64]:
    """The ``funding_rate`` column of a candle series from the exchange's funding history.

    Each settlement ``(time_ms, rate)`` goes to the first row whose open time is at or after
    it: the row whose open is the close of the candle it is charged in. Settlements outside
    ``(first open - interval, last open]`` concern candles outside the series and are left
    out. Rates landing on one row are added in time order (:func:`due_between` adds them
    the same way live, so both give the same float).

    Args:
        open_times_ms: the series' open times, ascending and gap-free.
        interval_ms: the candle interval (only bounds what the first row takes; any grid,
            calendar months too, works).
        settlements: funding times and rates, in any order.
    """
    column = np.zeros(len(open_times_ms), dtype=np.float64)
    if not len(open_times_ms):
        return column
    first, last = int(open_times_ms[0]), int(open_times_ms[-1])
    for time_ms, rate in sorted(settlements):
        if first - interval_ms < time_ms <= last:
            column[int(np.searchsorted(open_times_ms, time_ms, "left"))] += rate  # the first open at or after it
    return column


def due_between(open_ms: int, close_ms: int, settlements: Iterable[tuple[int, float]]) -> FundingRate | None:
    """The funding due at the close of the candle ``(open_ms, close_ms]``: every settlement
    in it, rates added in time order (as :func:`funding_rate_column` adds them), charged at
    the close; ``None`` when none falls inside or they add up to 0.
    """
    total = 0.0
    for time_ms, rate in sorted(settlements):
        if open_ms < time_ms <= close_ms:
            total += rate
    return FundingRate(close_ms, total) if total != 0.0 else None


def funding_rate_problem(rates: npt.NDArray[np.float64]) -> tuple[int, str] | None:
    """The first row of a ``funding_rate`` column that cannot be used, and why: a gap (an
    empty cell, NaN), an infinite value or a rate beyond :data:`MAX_FUNDING_RATE`.
    Non-numeric text is reported by the loader before this check.

    Returns:
        ``(row index, problem)``, or ``None`` when every row is usable.
    """
    missing = np.isnan(rates)
    if missing.any():
        return int(np.argmax(missing)), ("funding_rate is empty (a gap: every row needs a rate, 0 where no funding "
                                         "is due)")
    too_big = ~(np.abs(rates) <= MAX_FUNDING_RATE)
    if too_big.any():
        i = int(np.argmax(too_big))
        return i, (f"funding_rate {float(rates[i])!r} is beyond the sane bound of +-{MAX_FUNDING_RATE} per funding "
                   "time (a fraction: 0.0001 is 0.01%)")
    return None
