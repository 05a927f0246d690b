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
from tests.bot.test_engine import assert_same_as_backtest, candles_of
from tests.conftest import funding_settlements, with_funding
from trainer.evaluation.backtest import make_env, run_backtest


def test_engine_with_live_funding_equals_the_backtest_of_the_funding_column(decisive_ppo_model: Path,
                                                                            btc_candles: pd.DataFrame) -> None:
    """The engine is handed each candle's funding the way the daemon finds it (settlements
    inside the candle, :func:`env.funding.due_between`); the backtest reads the file's column."""
    frame = with_funding(btc_candles.iloc[:3000].reset_index(drop=True))
    settlements = funding_settlements(frame)
    strategy = build_strategy(f"ppo:{decisive_ppo_model}", lookback_window=20)
    env_settings, risk = EnvSettings(slippage_bps=2.0), RiskSettings(max_drawdown=0.5, daily_loss_limit=0.2)
    result = run_backtest(strategy, make_env(frame, env_settings), risk=risk)
    engine = SymbolEngine("BTCUSDT", "1m", env_settings, risk, ServingStrategy(strategy, "ppo"), perpetual=True)
    outputs = [engine.on_candle(c, decided_ms=0, funding=due_between(c.open_time_ms, c.open_time_ms + 60_000,
                                                                     settlements))
               for c in candles_of(frame[:-1])]
    records = [o.record for o in outputs if o.record is not None]
    assert_same_as_backtest(records, [e for o in outputs for e in o.risk_events], result)
    assert [r.funding for r in records if r.funding is not None] == result.funding
    assert len(result.funding) >= 2 and result.metrics.funding_paid == engine.portfolio.funding_paid != 0.0
    assert any(t.funding for t in result.trades)


def test_a_model_trained_without_funding_trades_a_perpetual_with_one_warning(
        ppo_model: Path, caplog: pytest.LogCaptureFixture) -> None:
    strategy = build_strategy(f"ppo:{ppo_model}", lookback_window=20)
    assert strategy.metadata.funding is False  # trained on spot candles
    with caplog.at_level("WARNING", logger="bot.engine"):
        SymbolEngine("BTCUSDT", "1m", EnvSettings(), RiskSettings(), ServingStrategy(strategy, "ppo", "v1"))
        assert caplog.records == []  # spot: nothing to say
        SymbolEngine("BTCUSDT", "1m", EnvSettings(), RiskSettings(), ServingStrategy(strategy, "ppo", "v1"),
                     perpetual=True)
    (line,) = [r.getMessage() for r in caplog.records]
    assert line.startswith("BTCUSDT: model v1 was trained without funding")
