"""Market chart data on real candles: bars at any resolution equal pandas' resampling of
the stored candles, marks count exactly the ledger's trades, exposure is the held side."""

from __future__ import annotations

import sqlite3

import numpy as np
import pandas as pd
import pytest

from state.queries.market import candle_bars, exposure, markets, trade_marks
from state.queries.resolution import WEEK_MS, bucket_start, levels_for
from state.queries.scope import Scope


def _candles(conn: sqlite3.Connection, symbol: str) -> pd.DataFrame:
    return pd.read_sql_query("SELECT open_time_ms, open, high, low, close, volume FROM candles WHERE symbol = ? "
                             "ORDER BY open_time_ms", conn, params=(symbol,))


def test_markets_span_the_stored_candles(conn: sqlite3.Connection) -> None:
    found = {m.symbol: m for m in markets(conn)}
    assert set(found) == {"BTCUSDT", "ETHUSDT"}
    btc = _candles(conn, "BTCUSDT")
    assert (found["BTCUSDT"].first_ms, found["BTCUSDT"].last_ms) == (btc.open_time_ms.min(), btc.open_time_ms.max())
    assert found["BTCUSDT"].interval_ms == 60_000 and found["BTCUSDT"].account == "default"
    assert [m.symbol for m in markets(conn, Scope(symbol="ETHUSDT"))] == ["ETHUSDT"]
    assert markets(conn, Scope(account="someone else")) == []


@pytest.mark.parametrize("minutes", [1, 5, 60, 1440])
def test_bars_equal_pandas_resampling_of_the_candles(conn: sqlite3.Connection, minutes: int) -> None:
    market = next(m for m in markets(conn) if m.symbol == "BTCUSDT")
    level = minutes * 60_000
    start, end = market.first_ms + 17 * 60_000, market.last_ms - 3 * 60_000
    bars = candle_bars(conn, market, level, start, end)
    frame = _candles(conn, "BTCUSDT")
    frame = frame[(frame.open_time_ms >= start) & (frame.open_time_ms <= end)]
    expected = frame.assign(b=frame.open_time_ms // level * level).groupby("b").agg(
        open=("open", "first"), high=("high", "max"), low=("low", "min"), close=("close", "last"),
        volume=("volume", "sum"))
    got = pd.DataFrame(bars, columns=["b", "open", "high", "low", "close", "volume"]).set_index("b")
    assert list(got.index) == list(expected.index)
    for column in ("open", "high", "low", "close"):
        assert (got[column] == expected[column]).all(), column  # the stored doubles themselves
    np.testing.assert_allclose(got["volume"], expected["volume"], rtol=1e-12)


def test_weeks_start_on_monday() -> None:
    monday = 1_678_060_800_000  # 2023-03-06 00:00 UTC, a Monday
    assert bucket_start(monday + 3 * 86_400_000, WEEK_MS) == monday
    assert levels_for(60_000)[-1] == WEEK_MS and levels_for(3_600_000)[0] == 3_600_000
    assert levels_for(7 * 60_000) == [7 * 60_000, WEEK_MS]  # itself, then the standard multiples of it


def test_marks_count_every_trade_entered_or_exited_in_the_window(conn: sqlite3.Connection) -> None:
    market = next(m for m in markets(conn) if m.symbol == "BTCUSDT")
    start, end = market.first_ms + 300 * 60_000, market.first_ms + 1500 * 60_000
    marks = trade_marks(conn, market, market.interval_ms, start, end)
    entries = conn.execute("SELECT trade_id FROM trades WHERE symbol = 'BTCUSDT' AND entry_time_ms BETWEEN ? AND ?",
                           (start, end)).fetchall()
    exits = conn.execute("SELECT trade_id, net_pnl FROM trades WHERE symbol = 'BTCUSDT' "
                         "AND exit_time_ms BETWEEN ? AND ?", (start, end)).fetchall()
    assert len(entries) > 10 and len(exits) > 10
    assert sorted(m.trade_id for m in marks if m.kind == "entry") == sorted(t for (t,) in entries)
    assert {m.trade_id: m.net_pnl for m in marks if m.kind == "exit"} == dict(exits)
    assert [m.time_ms for m in marks] == sorted(m.time_ms for m in marks)
    # at a coarser resolution the same trades are counted per bar
    hourly = trade_marks(conn, market, 3_600_000, start, end)
    assert sum(m.count for m in hourly if m.kind == "entry") == len(entries)
    assert sum(m.count for m in hourly if m.kind == "exit") == len(exits)
    assert sum(m.net_pnl for m in hourly if m.kind == "exit") == pytest.approx(sum(p for _, p in exits))


def test_the_open_position_is_marked_at_its_entry(conn: sqlite3.Connection) -> None:
    row = conn.execute("SELECT symbol, side, entry_time_ms FROM positions WHERE side <> 0").fetchone()
    assert row is not None, "the sample ends with a position open"
    market = next(m for m in markets(conn) if m.symbol == row[0])
    marks = trade_marks(conn, market, market.interval_ms, row[2], market.last_ms)
    opened = [m for m in marks if m.open_position]
    assert len(opened) == 1 and opened[0].time_ms == row[2] and opened[0].side == ("long" if row[1] == 1 else "short")


def test_exposure_is_the_side_held_after_each_decision(conn: sqlite3.Connection) -> None:
    market = next(m for m in markets(conn) if m.symbol == "BTCUSDT")
    start, end = market.first_ms, market.first_ms + 600 * 60_000
    sides = dict(conn.execute("SELECT open_time_ms, side FROM equity WHERE symbol = 'BTCUSDT' "
                              "AND open_time_ms BETWEEN ? AND ?", (start, end)).fetchall())
    assert dict(exposure(conn, market, 60_000, start, end)) == pytest.approx(sides)
    ten = dict(exposure(conn, market, 600_000, start, end))
    for bucket, mean in ten.items():
        inside = [s for t, s in sides.items() if bucket <= t < bucket + 600_000]
        assert mean == pytest.approx(sum(inside) / len(inside))
