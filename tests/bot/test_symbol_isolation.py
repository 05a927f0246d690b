"""One symbol that Bybit stops streaming (delisted at runtime) never stops the others.

Two symbols replay from the local Bybit server; ETHUSDT is delisted as candle 20 closes
and the connection drops right after, so the resubscribe is refused. BTCUSDT decides
every candle; ETHUSDT is retried, then dropped, and /health, /status, ``shadow status``
and the log say which symbol and why.
"""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from bot.cli import app
from tests.bot.service_harness import HISTORY, running_service

REPLAYED = 60
DELISTED_AT = 20


@pytest.fixture(scope="module")
def frame(btc_candles: pd.DataFrame) -> pd.DataFrame:
    return btc_candles.iloc[: HISTORY + REPLAYED].reset_index(drop=True)


async def test_a_delisted_symbol_is_retried_then_dropped_while_the_other_trades_on(
        tmp_path: Path, frame: pd.DataFrame, caplog: pytest.LogCaptureFixture) -> None:
    db = tmp_path / "ledger.sqlite"
    health: list[tuple[int, list[str]]] = []
    with caplog.at_level("INFO"):
        async with running_service(frame, db, symbols=("BTCUSDT", "ETHUSDT"), speed=20.0,
                                   faults=[f"delist@{DELISTED_AT}", f"drop@{DELISTED_AT + 1}"],
                                   exchange={"backoff_min_s": 0.2, "backoff_max_s": 0.4},
                                   feed={"subscribe_attempts": 3}) as service:
            while not service.task.done():
                status, body = await service.get("/health")
                health.append((status, body["problems"]))
                await asyncio.sleep(0.05)
            report = await service.finished()
            _, document = await service.get("/status")

    with sqlite3.connect(db) as conn:
        decided = dict(conn.execute("SELECT symbol, count(*) FROM decisions GROUP BY symbol").fetchall())
    assert decided == {"BTCUSDT": REPLAYED, "ETHUSDT": DELISTED_AT}  # BTCUSDT missed nothing
    assert report.symbols["ETHUSDT"].failed.startswith("SubscriptionError: Bybit refused the subscription to "
                                                       "kline.1.ETHUSDT")
    assert report.symbols["BTCUSDT"].failed is None

    retrying = [p for _, problems in health for p in problems if p.startswith("ETHUSDT: not streaming: Bybit refused")]
    assert retrying and "Invalid symbol :[kline.1.ETHUSDT]" in retrying[0] and "retry 1 of 2" in retrying[0]
    assert any(status == 503 and any(p.startswith("ETHUSDT: stopped: SubscriptionError") for p in problems)
               for status, problems in health)
    assert not [p for _, problems in health for p in problems if p.startswith(("BTCUSDT: not", "BTCUSDT: stopped"))]

    [problem] = document["feed_problems"]
    assert (problem["symbol"], problem["state"], problem["refusals"]) == ("ETHUSDT", "dropped", 3)
    assert problem["reason"] == "Invalid symbol :[kline.1.ETHUSDT]"

    printed = CliRunner().invoke(app, ["status", "--db", str(db)]).output
    assert "ETHUSDT: not streaming: Bybit refused its subscription 3 time(s) (Invalid symbol :[kline.1.ETHUSDT]); " \
           "dropped until restart" in printed

    logged = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("bot."))
    assert "ETHUSDT: Bybit refused its subscription 1 time(s)" in logged
    assert "ETHUSDT: Bybit refused its subscription 3 time(s) (Invalid symbol :[kline.1.ETHUSDT]); dropped until " \
           "restart; the other symbols go on" in logged
