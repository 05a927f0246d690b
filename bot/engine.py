"""One symbol's decision pipeline, the live twin of a backtest step, for every account.

For each closed candle: streaming features (``env.features``) and the market part of the
observation, **once**; then, for each paper account trading the symbol, the account marked
at this close, settling the perpetual funding due at it (``env.funding``) -> its
observation (``env.observation``: the shared market window plus its own five portfolio
features) -> its strategy -> its money step
(:class:`env.execution.Account`: risk guard, then fill) -> a
:class:`state.records.DecisionRecord` for the ledger. Every step is the env's own code (the
env's step calls the same ``Account``), so replaying a candle file through the engine gives
each account the backtest of its strategy, decisions, fills and equity bit for bit.

The engine is synchronous and does no I/O: the daemon feeds it candles and writes what
it returns (every account's decision at a candle in one transaction), so the same engine
can be driven from a list in tests.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from dataclasses import dataclass

import numpy as np
import pandas as pd

from config.settings import EnvSettings, RiskSettings
from env.execution import Account
from env.features import WARMUP_CANDLES, StreamingFeatures, compute_features
from env.funding import FundingRate
from env.observation import build_observation
from env.portfolio import Portfolio, PortfolioConfig, PortfolioState
from env.risk import RiskGuard, RiskState
from env.types import Candle
from state.records import DecisionRecord
from strategies.base import MarketContext, Strategy

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ServingStrategy:
    """The strategy deciding now, with the labels every decision records.

    Args:
        strategy: the decision maker.
        label: what the ``decisions.strategy`` column shows (``"ppo"``, ``"flat"``...).
        model_version: the registry version of a model, ``None`` for a baseline.
    """

    strategy: Strategy
    label: str
    model_version: str | None = None


class EngineAccount:
    """One paper account on one symbol: its money step and the strategy deciding for it.

    Args:
        name: the ledger's ``account``.
        env: the account's money: initial balance, position size, commission, slippage.
        risk: its drawdown stop and daily loss limit.
        serving: the strategy deciding for it.
    """

    __slots__ = ("money", "name", "serving")

    def __init__(self, name: str, env: EnvSettings, risk: RiskSettings, serving: ServingStrategy) -> None:
        self.name = name
        self.money = Account(Portfolio(PortfolioConfig.from_settings(env)), RiskGuard.from_settings(risk))
        self.serving = serving

    @property
    def portfolio(self) -> Portfolio:
        return self.money.portfolio

    @property
    def guard(self) -> RiskGuard:
        guard = self.money.guard
        assert guard is not None  # every live account is guarded (0 limits switch a limit off)
        return guard

    def restore(self, state: PortfolioState, risk: RiskState | None = None) -> None:
        """Continue the money (and the risk guard) exactly where the ledger left them."""
        self.portfolio.restore(state)
        if risk is not None:
            self.guard.state = risk


@dataclass(frozen=True, slots=True)
class _Joining:
    """An account that joins at the next candle with another account's equity at its close."""

    env: EnvSettings
    risk: RiskSettings
    serving: ServingStrategy
    equity_of: str


@dataclass(slots=True)
class EngineOutput:
    """What one candle produced: one decision per account (none during warm-up); each
    record carries the risk events its account raised."""

    candle: Candle
    records: tuple[DecisionRecord, ...] = ()


class SymbolEngine:
    """Candle in, one decision per account out, for one symbol.

    Args:
        symbol / interval: the market (``"BTCUSDT"``, ``"1m"``).
        lookback_window: candles of features per observation (one for every account: the
            market part of the observation is built once).
        perpetual: the market pays funding (linear); a model trained without funding is
            served with a warning.
        funding_warned: the models already warned about, shared by a daemon's engines so
            that a model says it once, not once per symbol (default: this engine's own).
    """

    def __init__(self, symbol: str, interval: str, lookback_window: int, *, perpetual: bool = False,
                 funding_warned: set[str] | None = None) -> None:
        self.symbol = symbol
        self.interval = interval
        self.perpetual = perpetual
        self._funding_warned = set() if funding_warned is None else funding_warned
        self.lookback = lookback_window
        self.accounts: dict[str, EngineAccount] = {}
        self.last_open_ms: int | None = None
        self._last_close: float | None = None
        self._joining: dict[str, _Joining] = {}
        self._features = StreamingFeatures()
        self._window: deque[np.ndarray] = deque(maxlen=self.lookback)
        self._closes: deque[float] = deque(maxlen=1)
        self._times: deque[int] = deque(maxlen=1)

    # ------------------------------------------------------------------ set-up
    def add_account(self, name: str, env: EnvSettings, risk: RiskSettings, serving: ServingStrategy) -> EngineAccount:
        """A new account, trading from the next candle (marked at the last close seen).

        Raises:
            ValueError: the engine already has an account of that name.
        """
        if name in self.accounts or name in self._joining:
            raise ValueError(f"{self.symbol}: account {name!r} is already trading")
        account = self.accounts[name] = EngineAccount(name, env, risk, serving)
        self._warn_without_funding(serving)
        if self._last_close is not None and self.last_open_ms is not None:
            account.money.mark(self._last_close, self.last_open_ms)
        self._fit_context()
        return account

    def join(self, name: str, env: EnvSettings, risk: RiskSettings, serving: ServingStrategy, *,
             equity_of: str) -> None:
        """Add an account at the next candle, starting with the equity account ``equity_of``
        has at that candle's close (its ``env.initial_balance`` is replaced by it): a live
        trial's challenger and its incumbent then start level.

        Raises:
            ValueError: the name is taken, or ``equity_of`` is not an account here.
        """
        if name in self.accounts or name in self._joining:
            raise ValueError(f"{self.symbol}: account {name!r} is already trading")
        if equity_of not in self.accounts:
            raise ValueError(f"{self.symbol}: no account {equity_of!r} to take the equity of")
        self._joining[name] = _Joining(env, risk, serving, equity_of)
        self._warn_without_funding(serving)
        self._fit_context()

    def remove_account(self, name: str) -> None:
        """Stop trading an account (its ledger rows stay)."""
        self.accounts.pop(name, None)
        self._joining.pop(name, None)
        self._fit_context()

    def serve(self, name: str, serving: ServingStrategy) -> None:
        """Swap an account's strategy (e.g. a newly promoted model); takes effect at the next candle."""
        self.accounts[name].serving = serving
        self._warn_without_funding(serving)
        self._fit_context()

    def warm(self, history: pd.DataFrame) -> None:
        """Feed stored candles (``env.candles`` layout, oldest first) to a fresh engine
        without deciding: the features' state, the observation window and the strategies'
        context continue exactly as if each candle had gone through :meth:`on_candle`."""
        if history.empty:
            return
        self._features.warm(history)
        first_row = max(WARMUP_CANDLES, len(history) - self.lookback)
        if first_row < len(history):
            self._window.extend(compute_features(history)[first_row:].astype(np.float32))
        keep = self._closes.maxlen or 1
        self._closes.extend(history["close"].to_numpy(dtype=np.float64)[-keep:].tolist())
        self._times.extend(history["open_time_ms"].to_numpy(dtype=np.int64)[-keep:].tolist())
        self.last_open_ms = int(history["open_time_ms"].iloc[-1])
        self._last_close = float(history["close"].iloc[-1])
        for account in self.accounts.values():
            account.money.mark(self._last_close, self.last_open_ms)

    def _fit_context(self) -> None:
        """Keep as many candles of context as the longest-sighted strategy needs."""
        strategies = [a.serving.strategy for a in self.accounts.values()]
        strategies += [j.serving.strategy for j in self._joining.values()]
        history = max((s.history for s in strategies), default=1)
        if history != self._closes.maxlen:
            self._closes = deque(self._closes, maxlen=history)
            self._times = deque(self._times, maxlen=history)

    def _warn_without_funding(self, serving: ServingStrategy) -> None:
        metadata = getattr(serving.strategy, "metadata", None)
        model = serving.model_version or serving.label
        if self.perpetual and metadata is not None and not metadata.funding and model not in self._funding_warned:
            self._funding_warned.add(model)
            log.warning("%s: model %s was trained without funding (no funding_rate in its candles) and now trades a "
                        "perpetual that pays it; its backtests overstate holding positions", self.symbol, model)

    # ---------------------------------------------------------------- decisions
    def on_candle(self, candle: Candle, *, decided_ms: int, run_id: int | None = None,
                  arrived_ns: int | None = None, funding: FundingRate | None = None) -> EngineOutput:
        """Process the next closed candle (it must follow the previous one).

        Args:
            candle: the closed candle.
            decided_ms: wall-clock time of the decisions (epoch ms, from the daemon's clock).
            run_id: the daemon session writing the decisions.
            arrived_ns: ``time.perf_counter_ns()`` when the candle's message arrived; each
                recorded latency runs from then to the end of its account's decision.
            funding: the perpetual funding due at its close (:func:`env.funding.due_between`),
                settled on every account's position held over it before anything else.
        """
        started_ns = arrived_ns if arrived_ns is not None else time.perf_counter_ns()
        row = self._features.update(candle.open, candle.high, candle.low, candle.close, candle.volume)
        self._closes.append(candle.close)
        self._times.append(candle.open_time_ms)
        self.last_open_ms, self._last_close = candle.open_time_ms, candle.close
        for account in self.accounts.values():
            account.money.mark(candle.close, candle.open_time_ms, funding)
        if self._joining:
            self._admit(candle)
        if row is None:
            return EngineOutput(candle)
        self._window.append(row.astype(np.float32))
        if len(self._window) < self.lookback:
            return EngineOutput(candle)
        market = np.stack(self._window)
        closes = np.fromiter(self._closes, np.float64, len(self._closes))
        times = np.fromiter(self._times, np.int64, len(self._times))
        records = []
        for account in self.accounts.values():
            serving, money = account.serving, account.money
            history = serving.strategy.history
            obs = build_observation(market, money.portfolio)
            execution = money.execute(int(serving.strategy.act(obs, MarketContext(closes[-history:],
                                                                                  times[-history:]))))
            records.append(DecisionRecord.from_execution(
                candle, obs, execution, money, account_name=account.name, strategy=serving.label,
                model_version=serving.model_version, latency_ms=(time.perf_counter_ns() - started_ns) / 1e6,
                decided_ms=decided_ms, run_id=run_id,
            ))
        return EngineOutput(candle, tuple(records))

    def _admit(self, candle: Candle) -> None:
        """Joining accounts start now, with their reference account's equity at this close."""
        for name, joining in self._joining.items():
            equity = self.accounts[joining.equity_of].portfolio.equity
            env = joining.env.model_copy(update={"initial_balance": equity})
            account = self.accounts[name] = EngineAccount(name, env, joining.risk, joining.serving)
            account.money.mark(candle.close, candle.open_time_ms)
        self._joining.clear()
