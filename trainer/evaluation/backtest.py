"""Backtests: any strategy, run through the training env itself, and the one evaluation
spec every scorer judges by.

There is no second PnL implementation here. The backtester steps
:class:`env.crypto_trading_env.CryptoTradingEnv` (whose money step,
:class:`env.execution.Account`, is the live engine's) one candle at a time, as the engine
does, asks the strategy for each candle's order (a model of any action mode, holding
between the decisions of its stride), and only records what the env reports: equity after every
step, the position, what each action did (``env.last_execution``: the trade carried out,
its fills, any risk events), the funding each mark settled (``env.account.funding_payment``)
and the final account.

**One evaluation spec.** :class:`EvaluationSpec` (the ``[env]`` account and costs plus the
``[risk]`` guard, built by :meth:`EvaluationSpec.from_settings`) is what every scorer takes:
``shadow backtest``, walk-forward, ``shadow tune``, multi-symbol validation and the
retraining gate. It applies to every strategy of a comparison, baselines included, so a
model is tuned, validated and promoted on one score. The default is the live risk guard
(``[evaluation] risk_guard = true``): a score is what the daemon would have made.

Every strategy of one comparison runs on the same env (same candles, same features, same
first decision candle), so buy & hold and flat are measured on exactly the candles the
strategy traded.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt
import pandas as pd

from config.settings import EnvSettings, RiskSettings, Settings
from env.candles import infer_interval_ms
from env.crypto_trading_env import CryptoTradingEnv
from env.funding import FundingPayment
from env.portfolio import ClosedTrade, Fill
from env.risk import RiskEvent, RiskGuard
from env.types import EnvInfo
from strategies.base import MarketContext, Strategy
from trainer.evaluation.metrics import Metrics, compute_metrics

BASELINES: tuple[str, ...] = ("buy_and_hold", "flat")
"""Shown beside every strategy, always."""


class EarlyEnd(NamedTuple):
    """A run the env ended before its candles ran out: the candle its equity was last
    marked at, the steps it took, and why (the env's blow-up rule)."""

    time_ms: int
    steps: int
    reason: str


class OpenPosition(NamedTuple):
    """The position still open when the data ran out (marked at the last close)."""

    side: int
    qty: float
    entry_time_ms: int
    entry_price: float
    entry_fee: float
    mark_price: float
    unrealized_pnl: float
    funding: float
    """Funding the position has paid so far (negative: received)."""


@dataclass
class BacktestResult:
    """Everything one run produced.

    ``times_ms``, ``closes`` and ``equity`` have ``n + 1`` entries: the first decision
    candle, then the candle after each step. ``actions``, ``positions`` and
    ``decision_equity`` have ``n``: the action at each decision candle, the position held
    from it to the next close, and the equity right after its fills (what the live
    ledger's ``equity`` table records for that candle). ``perpetual`` says whether the
    candles carried funding (a ``funding_rate`` column); ``funding`` holds every funding
    payment, in time order.

    .. warning:: Runs compared on one env start together but need not end together: a
       run the env terminates (``ended_early``) is shorter than the others.
    """

    strategy: str
    times_ms: npt.NDArray[np.int64]
    closes: npt.NDArray[np.float64]
    equity: npt.NDArray[np.float64]
    actions: npt.NDArray[np.int8]
    positions: npt.NDArray[np.int8]
    decision_equity: npt.NDArray[np.float64]
    fills: list[Fill]
    trades: list[ClosedTrade]
    open_position: OpenPosition | None
    final_info: EnvInfo
    interval_ms: int
    ended_early: EarlyEnd | None = None
    risk_events: list[RiskEvent] = field(default_factory=list)
    position_size: float = 1.0
    perpetual: bool = False
    funding: list[FundingPayment] = field(default_factory=list)
    metrics: Metrics = field(init=False)

    def __post_init__(self) -> None:
        self.metrics = compute_metrics(
            self.equity, self.positions, self.trades, self.final_info["fees_paid"], self.interval_ms,
            closes=self.closes, traded_notional=sum(f.qty * f.price for f in self.fills),
            position_size=self.position_size,
            funding_paid=self.final_info["funding_paid"],
        )

    @property
    def terminated(self) -> bool:
        """The env ended the run before its candles ran out (see ``ended_early``)."""
        return self.ended_early is not None

    @property
    def total_pnl(self) -> float:
        """The env's own ``info["total_pnl"]`` at the end of the run."""
        return float(self.final_info["total_pnl"])


def make_env(candles: pd.DataFrame, settings: EnvSettings) -> CryptoTradingEnv:
    """The env a backtest runs in: the training env with the ``[env]`` account and costs,
    one episode over all the candles, stepped one candle at a time
    (:meth:`~env.crypto_trading_env.CryptoTradingEnv.step_candle`) with each strategy's own
    orders, so a model's action mode and decision stride are its own, not ``[env]``'s."""
    return CryptoTradingEnv.from_settings(candles, settings, random_start=False, episode_length=None,
                                          action_mode="trade", decision_stride=1)


@dataclass(frozen=True, slots=True)
class EvaluationSpec:
    """How a strategy is judged, wherever it is judged (see the module docstring).

    Args:
        env: the account (initial balance, position size), the costs (commission,
            slippage) and the observation (lookback window).
        risk: the risk guard between every strategy and its fills; ``None``: unguarded.
    """

    env: EnvSettings
    risk: RiskSettings | None

    @classmethod
    def from_settings(cls, settings: Settings) -> EvaluationSpec:
        """The spec of ``settings`` (built here and nowhere else): ``[env]``, and ``[risk]``
        unless ``[evaluation] risk_guard`` is off."""
        return cls(settings.env, settings.risk if settings.evaluation.risk_guard else None)

    def make_env(self, candles: pd.DataFrame) -> CryptoTradingEnv:
        """The backtest env over ``candles`` (:func:`make_env` with this spec's ``[env]``)."""
        return make_env(candles, self.env)

    def compare(self, strategies: Sequence[Strategy], candles: pd.DataFrame,
                start_index: int | None = None) -> list[BacktestResult]:
        """Backtest every strategy on ``candles`` from the same first decision candle, each
        under this spec's costs and guard."""
        return run_comparison(strategies, self.make_env(candles), start_index, self.risk)

    def describe(self) -> dict[str, Any]:
        """What ``metrics.json`` and ``walk_forward.json`` record about the scoring."""
        return {"env": self.env.model_dump(), "risk_guard": None if self.risk is None else self.risk.model_dump()}


def run_backtest(strategy: Strategy, env: CryptoTradingEnv, start_index: int | None = None,
                 risk: RiskSettings | None = None) -> BacktestResult:
    """Run ``strategy`` from candle ``start_index`` (default: the env's first step) to the
    end of the env's candles, or until the env terminates (blow-up).

    Scorers call this through :class:`EvaluationSpec`, which chooses ``env`` and ``risk``.

    Args:
        strategy: what decides.
        env: built by :func:`make_env`; it is reset here, so it can be reused.
        start_index: first decision candle (index into ``env.candles``).
        risk: put the live engine's risk guard (``[risk]``) between the strategy and the
            fill (inside the env's money step), so the backtest decides what the daemon
            would; ``None``: no guard.
    """
    start = env.first_step if start_index is None else start_index
    guard = None if risk is None else RiskGuard.from_settings(risk)
    obs, info = env.reset(options={"start_index": start, "risk_guard": guard})
    decide = strategy.prepare(MarketContext.from_candles(env.candles))
    risk_events: list[RiskEvent] = []
    n_max = env.last_step - start
    equity = np.empty(n_max + 1)
    actions = np.zeros(n_max, dtype=np.int8)
    positions = np.zeros(n_max, dtype=np.int8)
    decision_equity = np.empty(n_max)
    equity[0] = info["equity"]
    fills: list[Fill] = []
    funding: list[FundingPayment] = []
    perpetual = env.account if env.funding else None  # the account of this episode (reset made it)
    step = env.step_candle
    k, terminated = 0, False
    while k < n_max:
        obs, _, terminated, truncated, info = step(decide(env.current_index, obs))
        execution = env.last_execution
        if perpetual is not None and perpetual.funding_payment is not None:
            funding.append(perpetual.funding_payment)
        if execution.fills:
            fills.extend(execution.fills)
        if execution.risk_events:
            risk_events.extend(execution.risk_events)
        actions[k] = execution.action
        positions[k] = info["position"]
        decision_equity[k] = info["decision_equity"]
        k += 1
        equity[k] = info["equity"]
        if terminated or truncated:
            break
    end = start + k
    times = env.candles["open_time_ms"].to_numpy()[start : end + 1]
    closes = env.candles["close"].to_numpy()[start : end + 1]
    return BacktestResult(
        strategy=strategy.name,
        times_ms=times.astype(np.int64),
        closes=closes.astype(np.float64),
        equity=equity[: k + 1],
        actions=actions[:k],
        positions=positions[:k],
        decision_equity=decision_equity[:k],
        fills=fills,
        trades=[f.trade for f in fills if f.trade is not None],
        open_position=_open_position(env),
        final_info=info,
        interval_ms=infer_interval_ms(env.candles["open_time_ms"].to_numpy()),
        ended_early=EarlyEnd(int(times[-1]), k, _blow_up_reason(env, info["equity"])) if terminated else None,
        risk_events=risk_events,
        position_size=env.portfolio_config.max_position_size,
        perpetual=env.funding,
        funding=funding,
    )


def _blow_up_reason(env: CryptoTradingEnv, equity: float) -> str:
    """Why the env terminated: its one end rule (the seed's blow-up)."""
    keep = 1.0 - env.reward_weights.max_loss
    floor = keep * env.portfolio_config.initial_balance
    return f"blow-up: equity {equity:.6g} fell below {floor:g} ({keep:.0%} of the initial balance)"


def run_comparison(
    strategies: Sequence[Strategy], env: CryptoTradingEnv, start_index: int | None = None,
    risk: RiskSettings | None = None,
) -> list[BacktestResult]:
    """Backtest several strategies on the same env and start candle."""
    return [run_backtest(s, env, start_index, risk) for s in strategies]


def _open_position(env: CryptoTradingEnv) -> OpenPosition | None:
    p = env.portfolio
    if not p.side:
        return None
    return OpenPosition(p.side, p.qty, p.entry_time_ms, p.entry_price, p.entry_fee, p.last_price, p.unrealized_pnl,
                        p.position_funding)
