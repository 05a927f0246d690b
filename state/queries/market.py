"""The market chart's data: candles at a resolution, trade marks and exposure per bar.

Windows are bounded by time and count, so a ledger of a million candles costs only the
bars asked for. At the series' own interval every trade is its own mark; at a coarser
resolution the marks of one bar are counted together (one mark per bar, kind and side),
and a bar's exposure is the mean position (+1 long, -1 short) over its decided candles.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from env.intervals import GRIDS
from state.queries.resolution import bucket_sql, bucket_start
from state.queries.scope import EVERYTHING, Scope

INTERVAL_MS: dict[str, int] = {name: g.step_ms for name, g in GRIDS.items() if g.step_ms is not None}
"""Candle interval names and their length (the fixed ones: a chart's bars need a length)."""

Bar = tuple[int, float, float, float, float, float]
"""``(bucket start ms, open, high, low, close, volume)``."""


@dataclass(frozen=True, slots=True)
class Market:
    """One traded series of an account: what the chart can show."""

    account: str
    symbol: str
    interval: str
    interval_ms: int
    first_ms: int
    last_ms: int


def markets(conn: sqlite3.Connection, scope: Scope = EVERYTHING) -> list[Market]:
    """Every series the scope has decided on, with the span of its stored candles (primary
    key seeks only: as fast on a million candles as on ten)."""
    where, params = scope.where("p")
    rows = conn.execute(
        "SELECT p.account, p.symbol, p.interval, "
        "(SELECT min(c.open_time_ms) FROM candles c WHERE c.symbol = p.symbol AND c.interval = p.interval), "
        "(SELECT max(c.open_time_ms) FROM candles c WHERE c.symbol = p.symbol AND c.interval = p.interval) "
        f"FROM positions p WHERE {where} ORDER BY p.account, p.symbol", params,
    ).fetchall()
    return [Market(account, symbol, interval, INTERVAL_MS.get(interval, 0), first, last)
            for account, symbol, interval, first, last in rows]


def candle_bars(conn: sqlite3.Connection, market: Market, level_ms: int, start_ms: int, end_ms: int) -> list[Bar]:
    """Bars of ``level_ms`` over candles opening in ``[start_ms, end_ms]``, oldest first.

    A coarser bar's open is its first candle's open and its close its last candle's close;
    high, low and volume cover every candle in it.
    """
    key = (market.symbol, market.interval, start_ms, end_ms)
    if level_ms == market.interval_ms:
        return conn.execute(
            "SELECT open_time_ms, open, high, low, close, volume FROM candles "
            "WHERE symbol = ? AND interval = ? AND open_time_ms BETWEEN ? AND ? ORDER BY open_time_ms", key,
        ).fetchall()
    buckets = conn.execute(
        f"SELECT {bucket_sql('open_time_ms', level_ms)} AS b, min(open_time_ms), max(open_time_ms), max(high), "
        "min(low), sum(volume) FROM candles WHERE symbol = ? AND interval = ? AND open_time_ms BETWEEN ? AND ? "
        "GROUP BY b ORDER BY b", key,
    ).fetchall()
    ends = _candles_at(conn, market, [t for row in buckets for t in (row[1], row[2])])
    return [(b, ends[first][0], high, low, ends[last][1], volume) for b, first, last, high, low, volume in buckets]


def _candles_at(conn: sqlite3.Connection, market: Market, times_ms: Sequence[int]) -> dict[int, tuple[float, float]]:
    """``open_time_ms -> (open, close)`` of the given candles (primary key lookups)."""
    rows = conn.execute(
        "SELECT open_time_ms, open, close FROM candles WHERE symbol = ? AND interval = ? "
        "AND open_time_ms IN (SELECT value FROM json_each(?))",
        (market.symbol, market.interval, json.dumps(sorted(set(times_ms)))),
    ).fetchall()
    return {t: (o, c) for t, o, c in rows}


@dataclass(frozen=True, slots=True)
class TradeMark:
    """Trades entered or exited in one bar (at the series' interval: one trade).

    ``trade_id`` is set for a single trade; ``None`` for a count of several, or for the
    entry of the position still open (``open_position``).
    """

    time_ms: int
    kind: str  # "entry" or "exit"
    side: str  # "long" or "short"
    count: int
    price: float | None
    net_pnl: float | None
    trade_id: int | None
    open_position: bool = False


_SIDE = "CASE {col} WHEN 1 THEN 'long' ELSE 'short' END"


def trade_marks(conn: sqlite3.Connection, market: Market, level_ms: int, start_ms: int, end_ms: int) -> list[TradeMark]:
    """Entries and exits of the series' trades in ``[start_ms, end_ms]`` (and the open
    position's entry), by time; one mark per trade at the series' interval, else counted
    per bar, kind and side (``net_pnl`` summed over the exits)."""
    key = (market.symbol, market.account, start_ms, end_ms)
    side = _SIDE.format(col="side")
    marks: list[TradeMark] = []
    if level_ms == market.interval_ms:
        for kind, column, price, pnl in (("entry", "entry_time_ms", "entry_price", "NULL"),
                                         ("exit", "exit_time_ms", "exit_price", "net_pnl")):
            rows = conn.execute(
                f"SELECT {column}, {side}, {price}, {pnl}, trade_id FROM trades "
                f"WHERE symbol = ? AND account = ? AND {column} BETWEEN ? AND ?", key,
            ).fetchall()
            marks += [TradeMark(t, kind, s, 1, p, n, trade_id) for t, s, p, n, trade_id in rows]
    else:
        for kind, column in (("entry", "entry_time_ms"), ("exit", "exit_time_ms")):
            rows = conn.execute(
                f"SELECT {bucket_sql(column, level_ms)} AS b, {side} AS s, count(*), "
                f"{'sum(net_pnl)' if kind == 'exit' else 'NULL'} FROM trades "
                f"WHERE symbol = ? AND account = ? AND {column} BETWEEN ? AND ? GROUP BY b, s", key,
            ).fetchall()
            marks += [TradeMark(b, kind, s, n, None, pnl, None) for b, s, n, pnl in rows]
    opened = conn.execute(
        f"SELECT entry_time_ms, {side}, entry_price FROM positions WHERE symbol = ? AND account = ? AND side <> 0 "
        "AND entry_time_ms BETWEEN ? AND ?", key,
    ).fetchone()
    if opened is not None:
        t, s, price = opened
        marks.append(TradeMark(bucket_start(t, level_ms), "entry", s, 1, price, None, None, open_position=True))
    marks.sort(key=lambda m: (m.time_ms, m.kind != "exit"))  # a reversal's exit before its entry
    return marks


def exposure(conn: sqlite3.Connection, market: Market, level_ms: int, start_ms: int,
             end_ms: int) -> list[tuple[int, float]]:
    """``(bar start, mean position)`` per bar with decisions in ``[start_ms, end_ms]``: the
    position held after each decided candle (+1 long, -1 short, 0 flat), averaged per bar."""
    return conn.execute(
        f"SELECT {bucket_sql('open_time_ms', level_ms)} AS b, avg(side) FROM equity "
        "WHERE symbol = ? AND account = ? AND open_time_ms BETWEEN ? AND ? GROUP BY b ORDER BY b",
        (market.symbol, market.account, start_ms, end_ms),
    ).fetchall()


def market_json(market: Market) -> dict[str, Any]:
    """A market as the dashboard's JSON."""
    return {"account": market.account, "symbol": market.symbol, "interval": market.interval,
            "interval_ms": market.interval_ms, "first_ms": market.first_ms, "last_ms": market.last_ms}
