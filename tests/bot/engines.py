"""Engines as the daemon builds them, for tests that drive one by hand."""

from __future__ import annotations

from bot.engine import ServingStrategy, SymbolEngine
from config.accounts import DEFAULT_ACCOUNT
from config.settings import EnvSettings, RiskSettings


def one_account_engine(symbol: str, env: EnvSettings, risk: RiskSettings, serving: ServingStrategy,
                       account: str = DEFAULT_ACCOUNT, *, perpetual: bool = False) -> SymbolEngine:
    """An engine trading ``symbol`` for one account (a configuration without ``[[accounts]]``)."""
    engine = SymbolEngine(symbol, "1m", env.lookback_window, perpetual=perpetual)
    engine.add_account(account, env, risk, serving)
    return engine
