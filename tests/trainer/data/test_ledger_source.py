"""Backtest candles from the ledger: the same frame as from the file, and clear errors for
a missing market, an empty range or a gap."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pandas as pd
import pytest

from env.candles import RepairPolicy
from env.types import Candle
from state.database import connect_reader
from state.ledger import Ledger
from tests.conftest import PREFIX as WARMUP
from trainer.data.ledger_source import LedgerCandlesError, ledger_backtest_candles, pick_series
from trainer.data.ranges import RangeError, select_range


@pytest.fixture
def btc_conn(btc_ledger: Path) -> Iterator[sqlite3.Connection]:
    with closing(connect_reader(btc_ledger)) as conn:
        yield conn


@pytest.fixture(scope="module")
def gappy_ledger(tmp_path_factory: pytest.TempPathFactory, btc_candles: pd.DataFrame,
                 eth_candles: pd.DataFrame) -> Path:
    """Stored real candles: BTCUSDT 1m without rows 1000-1004 (an outage), and ETHUSDT 1m."""
    def candles(symbol: str, frame: pd.DataFrame) -> list[Candle]:
        return [Candle(symbol, "1m", int(r.open_time_ms), r.open, r.high, r.low, r.close, r.volume)
                for r in frame.itertuples()]

    async def fill(path: Path) -> None:
        async with await Ledger.open(path) as ledger:
            await ledger.store_candles(candles("BTCUSDT", pd.concat([btc_candles.iloc[:1000],
                                                                      btc_candles.iloc[1005:1700]])))
            await ledger.store_candles(candles("ETHUSDT", eth_candles.iloc[:300]))

    path = tmp_path_factory.mktemp("gappy") / "shadow.sqlite"
    asyncio.run(fill(path))
    return path


@pytest.mark.parametrize(("start", "end"), [("2023-03-01T05:00", "2023-03-01T20:00"),  # history stored before
                                            ("2023-03-01T01:00", None),  # less warm-up than needed
                                            (None, "2023-03-01T12:00")])
def test_a_ledger_range_is_the_same_frame_as_the_file_range(
    btc_conn: sqlite3.Connection, btc_ledger: Path, btc_candles: pd.DataFrame, start: str | None, end: str | None
) -> None:
    series = pick_series(btc_conn, btc_ledger, None, None)
    assert (series.symbol, series.interval, series.count) == ("BTCUSDT", "1m", 1700)
    frame, start_index = ledger_backtest_candles(btc_conn, btc_ledger, series, WARMUP, start, end)
    expected, expected_index = select_range(btc_candles.iloc[:1700], WARMUP, start, end)
    pd.testing.assert_frame_equal(frame, expected)
    assert start_index == expected_index


def test_a_symbol_or_interval_the_ledger_lacks_is_named_with_what_it_holds(gappy_ledger: Path) -> None:
    with closing(connect_reader(gappy_ledger)) as conn:
        assert pick_series(conn, gappy_ledger, "ETHUSDT", None).count == 300
        with pytest.raises(LedgerCandlesError, match=r"no SOLUSDT 1m candles; it holds BTCUSDT 1m \(1695 candles\), "
                                                     r"ETHUSDT 1m \(300 candles\)"):
            pick_series(conn, gappy_ledger, "SOLUSDT", "1m")
        with pytest.raises(LedgerCandlesError, match="no BTCUSDT 5m candles"):
            pick_series(conn, gappy_ledger, "BTCUSDT", "5m")
        with pytest.raises(LedgerCandlesError, match=r"holds several series .* choose one with --symbol"):
            pick_series(conn, gappy_ledger, None, "1m")


def test_a_range_without_candles_names_symbol_range_and_what_is_stored(
    btc_conn: sqlite3.Connection, btc_ledger: Path
) -> None:
    series = pick_series(btc_conn, btc_ledger, "BTCUSDT", "1m")
    held = "it holds 1700 BTCUSDT 1m candles from 2023-03-01 00:00 to 2023-03-02 04:19"
    with pytest.raises(LedgerCandlesError, match=rf"no BTCUSDT 1m candles in \[2023-04-01, last candle\); {held}"):
        ledger_backtest_candles(btc_conn, btc_ledger, series, WARMUP, "2023-04-01")
    with pytest.raises(LedgerCandlesError, match=r"no BTCUSDT 1m candles in \[2023-02-01, 2023-02-02\)"):
        ledger_backtest_candles(btc_conn, btc_ledger, series, WARMUP, "2023-02-01", "2023-02-02")
    with pytest.raises(RangeError, match="--from 2023-03-02 is not before --to 2023-03-01"):
        ledger_backtest_candles(btc_conn, btc_ledger, series, WARMUP, "2023-03-02", "2023-03-01")


def test_a_gap_in_the_range_is_an_error_unless_repaired(gappy_ledger: Path, btc_candles: pd.DataFrame) -> None:
    with closing(connect_reader(gappy_ledger)) as conn:
        series = pick_series(conn, gappy_ledger, "BTCUSDT", None)
        with pytest.raises(LedgerCandlesError, match=r"BTCUSDT 1m candles in \[2023-03-01T18:00, last candle\) and the "
                                                     r"candles before it: gap: 5 candle\(s\) missing between "
                                                     r"2023-03-01 16:39:00 and 2023-03-01 16:45:00"):
            ledger_backtest_candles(conn, gappy_ledger, series, WARMUP, "2023-03-01T18:00")
        repaired, _ = ledger_backtest_candles(conn, gappy_ledger, series, WARMUP, "2023-03-01T18:00",
                                              repair=RepairPolicy.REPAIR)
        filled = repaired.set_index("open_time_ms").loc[btc_candles.open_time_ms.iloc[1000:1005]]
        assert (filled["volume"] == 0).all() and filled["close"].nunique() == 1  # flat candles
        # the features run over every stored candle before the range: a gap long before it matters too
        with pytest.raises(LedgerCandlesError, match="gap: 5 candle"):
            ledger_backtest_candles(conn, gappy_ledger, series, WARMUP, "2023-03-02T03:00")
