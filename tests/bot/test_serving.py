"""The daemon serves a model only as it was trained: its candle interval, and no short
positions on a spot market; anything else is refused in one line before anything is written."""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from bot.daemon import Daemon
from bot.hotswap import HotSwapper
from bot.replay.market import ReplayMarket, ReplaySeries
from bot.replay.server import ReplayServer
from bot.serving import configured_strategy
from config.accounts import DEFAULT_ACCOUNT, AccountSettings
from config.errors import UserError
from config.settings import EnvSettings, RiskSettings, Settings
from state.ledger import Ledger
from state.records import ModelStatus
from strategies.model_metadata import ModelMismatchError, check_servable, load_metadata
from tests.bot.conftest import fast_exchange
from tests.bot.daemon_replay import HISTORY, settings_for
from tests.bot.engines import one_account_engine
from tests.conftest import REPO
from trainer.models.store import publish_model


def test_a_model_that_can_go_short_is_refused_on_spot(decisive_models: Callable[[str], Path]) -> None:
    for setup in ("trade", "target"):
        path = decisive_models(setup)
        with pytest.raises(ModelMismatchError, match="can hold a short position, which a spot market cannot"):
            check_servable(load_metadata(path), path, category="spot", interval="1m")
        check_servable(load_metadata(path), path, category="linear", interval="1m")
    long_flat = decisive_models("long_flat")
    check_servable(load_metadata(long_flat), long_flat, category="spot", interval="1m")


def test_a_model_is_served_on_its_own_candle_interval(decisive_models: Callable[[str], Path]) -> None:
    path = decisive_models("target-stride15")
    with pytest.raises(ModelMismatchError, match=r"trained on 1m candles, but the daemon streams 15m"):
        configured_strategy(f"ppo:{path}", 20, interval="15m")
    assert configured_strategy(f"ppo:{path}", 20, interval="1m").label == "ppo"


def test_an_account_whose_model_the_market_cannot_serve_is_refused_by_name(
        tmp_path: Path, decisive_models: Callable[[str], Path]) -> None:
    accounts = (AccountSettings(name="spot-ok", strategy=f"ppo:{decisive_models('long_flat')}"),
                AccountSettings(name="shorts", strategy=f"ppo:{decisive_models('target')}"))
    settings = Settings(exchange={"category": "spot", "ws_url": "wss://stream.bybit.com/v5/public/spot"},  # type: ignore[arg-type]
                        accounts=accounts,
                        ledger={"db_path": tmp_path / "l.sqlite"})  # type: ignore[arg-type]
    with pytest.raises(UserError, match=r"account 'shorts': .*can hold a short position"):
        Daemon(settings).check_inputs()
    Daemon(settings.model_copy(update={"accounts": accounts[:1]})).check_inputs()  # long_flat trades spot


@pytest.mark.parametrize(("setup", "category", "problem"), [
    ("target", "spot", "can hold a short position"), ("long_flat", "linear", "trained on 1m candles"),
])
def test_shadow_run_refuses_an_unservable_model_in_one_line_and_writes_nothing(
        tmp_path: Path, decisive_models: Callable[[str], Path], setup: str, category: str, problem: str) -> None:
    config = tmp_path / "shadow.toml"
    config.write_text(f'[exchange]\ncategory = "{category}"\nws_url = "ws://127.0.0.1:9/v5/public/{category}"\n'
                      f'[feed]\ninterval = "{"1m" if category == "spot" else "5m"}"\n')
    db = tmp_path / "ledger.sqlite"
    result = subprocess.run([sys.executable, "-m", "bot", "run", "--config", str(config), "--db", str(db),
                             "--strategy", f"ppo:{decisive_models(setup)}"], cwd=REPO, capture_output=True,
                            text=True, timeout=60, env=os.environ | {"COLUMNS": "1000"})
    assert result.returncode == 2, result.stderr
    assert problem in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stderr and not db.exists() and list(tmp_path.iterdir()) == [config]


async def test_a_promoted_model_the_market_cannot_serve_is_refused_and_trading_goes_on(
        tmp_path: Path, decisive_models: Callable[[str], Path], caplog: pytest.LogCaptureFixture) -> None:
    async with await Ledger.open(tmp_path / "l.sqlite") as ledger:
        entry = await publish_model(ledger, tmp_path / "models", decisive_models("target"), symbol="BTCUSDT",
                                    interval="1m", status=ModelStatus.PROMOTED)
    flat = configured_strategy("flat", 20)
    engine = one_account_engine("BTCUSDT", EnvSettings(), RiskSettings(), flat)
    with caplog.at_level(logging.ERROR):
        swaps = await HotSwapper({"BTCUSDT": engine}, [DEFAULT_ACCOUNT], 20, 1, category="spot").apply([entry])
    assert swaps == [] and engine.accounts[DEFAULT_ACCOUNT].serving is flat
    assert "refusing promoted model v0001" in caplog.text and "spot market cannot" in caplog.text


async def test_a_promoted_model_the_market_cannot_serve_stops_the_start_before_anything_is_stored(
        tmp_path: Path, btc_candles: pd.DataFrame, decisive_models: Callable[[str], Path]) -> None:
    db = tmp_path / "l.sqlite"
    async with await Ledger.open(db) as ledger:
        await publish_model(ledger, tmp_path / "models", decisive_models("target"), symbol="BTCUSDT", interval="1m",
                            status=ModelStatus.PROMOTED)
    market = ReplayMarket([ReplaySeries.from_frame("BTCUSDT", btc_candles.iloc[:300])], history=HISTORY)
    async with ReplayServer(market, speed=400) as server:
        settings = settings_for(server, db, "registry").model_copy(update={"exchange": fast_exchange(server, "spot")})
        with pytest.raises(ModelMismatchError, match="spot market cannot"):
            await asyncio.wait_for(Daemon(settings).run(asyncio.Event()), 20)
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT (SELECT count(*) FROM runs), (SELECT count(*) FROM candles)").fetchone() == (0, 0)
