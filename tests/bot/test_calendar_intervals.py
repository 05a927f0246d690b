"""Weekly and monthly candles live: Bybit's weeks open on Monday 00:00 UTC, its months on
the 1st. The daemon runs against the local replay server on 127.0.0.1 with one candle
missed on the stream: REST must bring back that very candle, and every candle is decided,
exactly as the backtest decides them.
"""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bot.daemon import Daemon
from bot.replay.faults import parse_faults
from bot.replay.market import ReplayMarket, ReplaySeries
from bot.replay.server import ReplayServer
from config.settings import DaemonSettings, EnvSettings, FeedSettings, LedgerSettings, Settings
from strategies.specs import build_strategy
from tests.bot.conftest import fast_exchange
from trainer.evaluation.backtest import make_env, run_backtest

HISTORY = 219  # the env's first decision index: the daemon warms up on exactly this over REST
DECIDED = 15
SKIPPED = 7  # the replayed candle the stream never pushes


def calendar_opens(interval: str, count: int) -> np.ndarray:
    """``count`` open times on Bybit's grid: Mondays from 2019-01-07, or months from 2001-01."""
    if interval == "1w":
        return pd.date_range("2019-01-07", periods=count, freq="7D").as_unit("ms").asi8
    return pd.date_range("2001-01-01", periods=count, freq="MS").as_unit("ms").asi8


@pytest.fixture(params=["1w", "1M"])
def interval(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def frame(interval: str, btc_candles: pd.DataFrame) -> pd.DataFrame:
    """Real BTCUSDT candles (every 60th minute of the sample, for candle-sized moves) on the
    weekly or monthly grid."""
    real = btc_candles.iloc[::60].iloc[: HISTORY + DECIDED].reset_index(drop=True)
    opens = calendar_opens(interval, len(real))
    return real.assign(open_time_ms=opens, timestamp=pd.to_datetime(opens, unit="ms"))


async def test_a_missed_candle_is_backfilled_and_every_candle_is_decided(
        tmp_path: Path, interval: str, frame: pd.DataFrame, caplog: pytest.LogCaptureFixture) -> None:
    db = tmp_path / "ledger.sqlite"
    market = ReplayMarket([ReplaySeries.from_frame("BTCUSDT", frame)], history=HISTORY)
    last_ms = int(market.open_time_ms[-1])
    async with ReplayServer(market, speed=40, faults=parse_faults([f"skip@{SKIPPED}"])) as server:
        settings = Settings(exchange=fast_exchange(server), feed=FeedSettings(symbols=["BTCUSDT"], interval=interval),
                            ledger=LedgerSettings(db_path=db),
                            daemon=DaemonSettings(strategy="sma:fast=2,slow=5", heartbeat_minutes=60))
        daemon = Daemon(settings)
        stop = asyncio.Event()
        daemon.listeners.append(lambda symbol, item, _: stop.set() if item.candle.open_time_ms >= last_ms else None)
        with caplog.at_level("INFO"):
            await asyncio.wait_for(daemon.run(stop), 30)

    with sqlite3.connect(db) as conn:
        decided = conn.execute("SELECT open_time_ms, action FROM decisions ORDER BY open_time_ms").fetchall()
        stored = [t for (t,) in conn.execute("SELECT open_time_ms FROM candles ORDER BY open_time_ms")]
    replayed = frame["open_time_ms"].iloc[HISTORY:].tolist()
    assert [t for t, _ in decided] == replayed  # every candle decided, the missed one included
    assert stored == frame["open_time_ms"].tolist()  # warm-up and backfill asked for the right candles
    skipped_ms = replayed[SKIPPED]
    assert any("gap before" in r.getMessage() for r in caplog.records)
    assert not any("the exchange has no candle" in r.getMessage() for r in caplog.records)
    assert daemon.feed is not None and daemon.feed.stats.backfilled_candles == 1

    result = run_backtest(build_strategy("sma:fast=2,slow=5", lookback_window=20), make_env(frame, EnvSettings()))
    assert [a for _, a in decided[:-1]] == result.actions.tolist()  # the same decisions as the backtest
    assert len(set(result.actions.tolist())) > 1  # and they are not all the same
    assert skipped_ms in stored
