"""One symbol's decision pipeline, the live twin of a backtest step.

For each closed candle: streaming features (``env.features``) -> the account marked at
this close, settling the perpetual funding due at it (``env.funding``) -> the observation
(``env.observation``) -> the strategy -> the money step
(:class:`env.execution.Account`: risk guard, then fill) -> a
:class:`state.records.DecisionRecord` for the ledger. Every step is the env's own code (the
env's step calls the same ``Account``), so replaying a candle file through the engine
gives the backtest's decisions, fills and equity bit for bit.

The engine is synchronous and does no I/O: the daemon feeds it candles and writes what
it returns, so the same engine can be driven from a list in tests.
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
from env.risk import RiskEvent, RiskGuard, RiskState
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


@dataclass(slots=True)
class EngineOutput:
    """What one candle produced: a decision to write (``None`` during warm-up) and any
    risk events it raised."""

    candle: Candle
    record: DecisionRecord | None
    risk_events: tuple[RiskEvent, ...] = ()


class SymbolEngine:
    """Candle in, decision out, for one symbol.

    Args:
        symbol / interval: the market (``"BTCUSDT"``, ``"1m"``).
        env: ``[env]`` settings: the account and the observation's lookback.
        risk: ``[risk]`` settings: the drawdown stop and daily loss limit.
        serving: the strategy to ask; replace it between candles with :meth:`serve`.
        perpetual: the market pays funding (linear); a model trained without funding is
            served with a warning.
    """

    def __init__(self, symbol: str, interval: str, env: EnvSettings, risk: RiskSettings,
                 serving: ServingStrategy, *, perpetual: bool = False) -> None:
        self.symbol = symbol
        self.interval = interval
        self.perpetual = perpetual
        self.lookback = env.lookback_window
        self.guard = RiskGuard.from_settings(risk)
        self.account = Account(Portfolio(PortfolioConfig.from_settings(env)), self.guard)
        self.serving = serving
        self.last_open_ms: int | None = None
        self._features = StreamingFeatures()
        self._window: deque[np.ndarray] = deque(maxlen=self.lookback)
        self._closes: deque[float] = deque(maxlen=serving.strategy.history)
        self._times: deque[int] = deque(maxlen=serving.strategy.history)
        self._warn_without_funding(serving)

    @property
    def portfolio(self) -> Portfolio:
        """The account's money."""
        return self.account.portfolio

    # ------------------------------------------------------------------ set-up
    def warm(self, history: pd.DataFrame) -> None:
        """Feed stored candles (``env.candles`` layout, oldest first) to a fresh engine
        without deciding: the features' state, the observation window and the strategy's
        context continue exactly as if each candle had gone through :meth:`on_candle`."""
        if history.empty:
            return
        self._features.warm(history)
        first_row = max(WARMUP_CANDLES, len(history) - self.lookback)
        if first_row < len(history):
            self._window.extend(compute_features(history)[first_row:].astype(np.float32))
        kept = self.serving.strategy.history  # the deques' length
        self._closes.extend(history["close"].to_numpy(dtype=np.float64)[-kept:].tolist())
        self._times.extend(history["open_time_ms"].to_numpy(dtype=np.int64)[-kept:].tolist())
        self.last_open_ms = int(history["open_time_ms"].iloc[-1])
        self.account.mark(float(history["close"].iloc[-1]), self.last_open_ms)

    def restore(self, state: PortfolioState, risk: RiskState | None = None) -> None:
        """Continue the account (and the risk guard) exactly where the ledger left them."""
        self.portfolio.restore(state)
        if risk is not None:
            self.guard.state = risk

    def serve(self, serving: ServingStrategy) -> None:
        """Swap the strategy (e.g. a newly promoted model); takes effect at the next candle."""
        history = serving.strategy.history
        if history != self._closes.maxlen:
            self._closes = deque(self._closes, maxlen=history)
            self._times = deque(self._times, maxlen=history)
        self.serving = serving
        self._warn_without_funding(serving)

    def _warn_without_funding(self, serving: ServingStrategy) -> None:
        metadata = getattr(serving.strategy, "metadata", None)
        if self.perpetual and metadata is not None and not metadata.funding:
            log.warning("%s: model %s was trained without funding (no funding_rate in its candles) and now trades a "
                        "perpetual that pays it; its backtests overstate holding positions", self.symbol,
                        serving.model_version or serving.label)

    # ---------------------------------------------------------------- decisions
    def on_candle(self, candle: Candle, *, decided_ms: int, run_id: int | None = None,
                  arrived_ns: int | None = None, funding: FundingRate | None = None) -> EngineOutput:
        """Process the next closed candle (it must follow the previous one).

        Args:
            candle: the closed candle.
            funding: the perpetual funding due at its close (:func:`env.funding.due_between`),
                settled on the position held over it before anything else.
            decided_ms: wall-clock time of the decision (epoch ms, from the daemon's clock).
            run_id: the daemon session writing the decision.
            arrived_ns: ``time.perf_counter_ns()`` when the candle's message arrived; the
                recorded latency runs from then to the end of the decision.
        """
        started_ns = arrived_ns if arrived_ns is not None else time.perf_counter_ns()
        row = self._features.update(candle.open, candle.high, candle.low, candle.close, candle.volume)
        self._closes.append(candle.close)
        self._times.append(candle.open_time_ms)
        self.last_open_ms = candle.open_time_ms
        account = self.account
        account.mark(candle.close, candle.open_time_ms, funding)
        if row is None:
            return EngineOutput(candle, None)
        self._window.append(row.astype(np.float32))
        if len(self._window) < self.lookback:
            return EngineOutput(candle, None)
        obs = build_observation(np.stack(self._window), account.portfolio)
        serving = self.serving
        context = MarketContext(np.fromiter(self._closes, np.float64, len(self._closes)),
                                np.fromiter(self._times, np.int64, len(self._times)))
        execution = account.execute(int(serving.strategy.act(obs, context)))
        latency_ms = (time.perf_counter_ns() - started_ns) / 1e6
        record = DecisionRecord.from_execution(
            candle, obs, execution, account, strategy=serving.label, model_version=serving.model_version,
            latency_ms=latency_ms, decided_ms=decided_ms, run_id=run_id,
        )
        return EngineOutput(candle, record, execution.risk_events)

