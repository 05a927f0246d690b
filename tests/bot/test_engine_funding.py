"""The live engine settles funding exactly as the backtest does, and says so when a model
trained without funding trades a perpetual."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from bot.engine import ServingStrategy, SymbolEngine
from config.settings import EnvSettings, RiskSettings
from env.funding import due_between
from strategies.specs import build_strategy
from tests.bot.engines import one_account_engine
from tests.bot.test_engine import assert_same_as_backtest, candles_of
from tests.conftest import funding_settlements, with_funding
from trainer.evaluation.backtest import make_env, run_backtest


def test_every_account_settles_its_own_live_funding_as_its_backtest_does(decisive_ppo_model: Path,
                                                                         btc_candles: pd.DataFrame) -> None:
    """The engine is handed each candle's funding the way the daemon finds it (settlements
    inside the candle, :func:`env.funding.due_between`); each account (its own strategy and
    money) settles it on its own position, as the backtest of its strategy reads the file's
    column."""
    frame = with_funding(btc_candles.iloc[:3000].reset_index(drop=True))
    settlements = funding_settlements(frame)
    risk = RiskSettings(max_drawdown=0.5, daily_loss_limit=0.2)
    accounts = {"ppo": (f"ppo:{decisive_ppo_model}", EnvSettings(slippage_bps=2.0)),
                "sma": ("sma:fast=5,slow=20", EnvSettings(initial_balance=250.0, commission=0.001))}
    engine = SymbolEngine("BTCUSDT", "1m", 20, perpetual=True)
    strategies = {name: build_strategy(spec, lookback_window=20) for name, (spec, _) in accounts.items()}
    for name, (_, env_settings) in accounts.items():
        engine.add_account(name, env_settings, risk, ServingStrategy(strategies[name], name))
    outputs = [engine.on_candle(c, decided_ms=0, funding=due_between(c.open_time_ms, c.open_time_ms + 60_000,
                                                                     settlements))
               for c in candles_of(frame[:-1])]
    for name, (_, env_settings) in accounts.items():
        result = run_backtest(strategies[name], make_env(frame, env_settings), risk=risk)
        records = [r for o in outputs for r in o.records if r.account == name]
        assert_same_as_backtest(records, [e for r in records for e in r.risk_events], result)
        assert [r.funding for r in records if r.funding is not None] == result.funding
        portfolio = engine.accounts[name].portfolio
        assert len(result.funding) >= 2 and result.metrics.funding_paid == portfolio.funding_paid != 0.0
        assert any(t.funding for t in result.trades)
    assert engine.accounts["ppo"].portfolio.funding_paid != engine.accounts["sma"].portfolio.funding_paid


def test_a_model_trained_without_funding_trades_a_perpetual_with_one_warning(
        ppo_model: Path, caplog: pytest.LogCaptureFixture) -> None:
    strategy = build_strategy(f"ppo:{ppo_model}", lookback_window=20)
    assert strategy.metadata.funding is False  # trained on spot candles
    with caplog.at_level("WARNING", logger="bot.engine"):
        one_account_engine("BTCUSDT", EnvSettings(), RiskSettings(), ServingStrategy(strategy, "ppo", "v1"))
        assert caplog.records == []  # spot: nothing to say
        one_account_engine("BTCUSDT", EnvSettings(), RiskSettings(), ServingStrategy(strategy, "ppo", "v1"),
                           perpetual=True)
    (line,) = [r.getMessage() for r in caplog.records]
    assert line.startswith("BTCUSDT: model v1 was trained without funding")


def test_a_daemon_s_engines_warn_once_per_model_not_once_per_symbol(
        ppo_model: Path, caplog: pytest.LogCaptureFixture) -> None:
    strategy = build_strategy(f"ppo:{ppo_model}", lookback_window=20)
    warned: set[str] = set()
    with caplog.at_level("WARNING", logger="bot.engine"):
        for symbol in ("BTCUSDT", "ETHUSDT", "SOLUSDT"):
            engine = SymbolEngine(symbol, "1m", 20, perpetual=True, funding_warned=warned)
            for account in ("a", "b"):
                engine.add_account(account, EnvSettings(), RiskSettings(), ServingStrategy(strategy, "ppo", "v1"))
        engine.serve("a", ServingStrategy(strategy, "ppo", "v2"))  # a newly promoted model says it too
    lines = [r.getMessage() for r in caplog.records]
    assert [line.split(" was")[0] for line in lines] == ["BTCUSDT: model v1", "SOLUSDT: model v2"]

