"""Backtest candles from the ledger: the closed candles the daemon stored for one market.

``shadow backtest --db`` runs exactly the backtest it runs on a candle file; this module
only picks the stored series, loads every stored candle up to the end of the requested
range with :func:`state.readers.read_candles` (the features run from the series' first
candle, as the daemon's do: the history rule of :func:`env.features.warmup_prefix`), refuses
a range without candles or with gaps (naming the symbol, interval and range), and hands the
frame to :func:`trainer.data.ranges.select_range`.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pandas as pd

from env.candles import CandleDataError, RepairPolicy, format_ms
from state.readers import CandleSeries, candle_series, read_candles
from trainer.data.ranges import RangeError, parse_range, select_range


class LedgerCandlesError(RangeError):
    """The ledger has no usable candles for the asked market and range."""


def pick_series(conn: sqlite3.Connection, db: Path, symbol: str | None, interval: str | None) -> CandleSeries:
    """The stored series matching ``symbol`` and ``interval``; either may be left out when
    the ledger holds only one series that fits.

    Raises:
        LedgerCandlesError: no series fits (the message lists what the ledger holds), or
            several do.
    """
    stored = candle_series(conn)
    fits = [s for s in stored if symbol in (None, s.symbol) and interval in (None, s.interval)]
    if len(fits) == 1:
        return fits[0]
    held = ", ".join(f"{s.symbol} {s.interval} ({s.count} candles)" for s in stored) or "no candles at all"
    if not fits:
        asked = " ".join(part for part in (symbol, interval) if part)
        raise LedgerCandlesError(f"ledger {db}: no {asked} candles; it holds {held}")
    raise LedgerCandlesError(f"ledger {db}: holds several series ({held}); choose one with --symbol and --interval")


def ledger_backtest_candles(
    conn: sqlite3.Connection,
    db: Path,
    series: CandleSeries,
    warmup: int,
    start: str | None = None,
    end: str | None = None,
    repair: RepairPolicy = RepairPolicy.STRICT,
) -> tuple[pd.DataFrame, int]:
    """The candles of ``series`` before ``end``, the first decision at ``start`` (at the
    earliest after ``warmup`` candles): what :func:`trainer.data.ranges.select_range` returns
    for a file.

    Raises:
        LedgerCandlesError: no stored candle in the range, a gap or an invalid candle before
            ``end`` (unless ``repair``).
        RangeError: an unparsable date, or a range too short to trade.
    """
    start_ms, end_ms = parse_range(start, end)
    name = f"{series.symbol} {series.interval}"
    span = f"[{start or 'first candle'}, {end or 'last candle'})"
    held = f"it holds {series.count} {name} candles from {format_ms(series.first_ms)} to {format_ms(series.last_ms)}"
    try:
        frame = read_candles(conn, series.symbol, series.interval, end_ms=None if end_ms is None else end_ms - 1,
                             repair=repair)
    except CandleDataError as exc:
        raise LedgerCandlesError(f"ledger {db}: {name} candles in {span} and the candles before it: {exc.problem}; "
                                 f"{held}") from None
    times = frame["open_time_ms"]
    if not ((times >= (start_ms or 0)) & (times < (end_ms or 2**62))).any():
        raise LedgerCandlesError(f"ledger {db}: no {name} candles in {span}; {held}")
    return select_range(frame, warmup, start, end)
