"""The coarse-bar cache serves what a direct query returns, and a growing series costs
only its newest bars."""

from __future__ import annotations

from contextlib import closing
from pathlib import Path

import pandas as pd

from bot.web.rollups import BarCache
from state.database import connect_reader
from state.queries.market import candle_bars, markets
from state.replay import replay_decisions, write_records

HOUR_MS = 3_600_000


def test_windows_equal_direct_reads_while_the_series_grows(tmp_path: Path, btc_candles: pd.DataFrame) -> None:
    path = tmp_path / "l.sqlite"
    records = [r for r, _ in replay_decisions(btc_candles.iloc[:3500], seed=1)]
    write_records(path, records[:3000])
    cache = BarCache()
    with closing(connect_reader(path)) as conn:
        market = markets(conn)[0]

        def window(start: int, end: int) -> list:
            return cache.window(("bars", market.symbol, HOUR_MS), conn,
                                lambda c, s, e: candle_bars(c, market, HOUR_MS, s, e), level_ms=HOUR_MS,
                                first_ms=market.first_ms, last_ms=market.last_ms, start_ms=start, end_ms=end)

        assert window(market.first_ms, market.last_ms) == candle_bars(conn, market, HOUR_MS, market.first_ms,
                                                                      market.last_ms)
        # whole bars: those starting from the one holding start_ms up to end_ms
        seven, twenty = market.first_ms + 7 * HOUR_MS, market.first_ms + 20 * HOUR_MS
        assert window(seven + 5, twenty + 5) == candle_bars(conn, market, HOUR_MS, seven, twenty + HOUR_MS - 1)
        assert cache.computed_rows == 50  # 3,000 minutes: 50 hourly bars, computed once

        write_records(path, records[3000:])  # the daemon decides 500 more candles
        market = markets(conn)[0]
        assert window(market.first_ms, market.last_ms) == candle_bars(conn, market, HOUR_MS, market.first_ms,
                                                                      market.last_ms)
        assert cache.computed_rows == 50 + 1 + 9  # the newest bar once more, and the 9 new ones (59 in all)
