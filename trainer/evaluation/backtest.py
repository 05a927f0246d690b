"""Backtests: any strategy, run through the training env itself.

There is no second PnL implementation here. The backtester steps
:class:`env.crypto_trading_env.CryptoTradingEnv` (which fills through
:class:`env.portfolio.Portfolio`) exactly as training does, asks the strategy for each
action, and only records what the env reports: equity after every step, the position,
the fills (``env.last_fills``) and the final account. Commission and slippage are the
``[env]`` settings.

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

from config.errors import UserError
from config.settings import EnvSettings, RiskSettings
from env.candles import format_ms, infer_interval_ms
from env.crypto_trading_env import CryptoTradingEnv
from env.portfolio import ClosedTrade, Fill
from env.risk import RiskEvent, RiskGuard
from strategies.base import MarketContext, Strategy
from trainer.evaluation.metrics import Metrics, compute_metrics

BASELINES: tuple[str, ...] = ("buy_and_hold", "flat")
"""Shown beside every strategy, always."""


class RangeError(UserError, ValueError):
    """A date range that selects no usable candles."""


class OpenPosition(NamedTuple):
    """The position still open when the data ran out (marked at the last close)."""

    side: int
    qty: float
    entry_time_ms: int
    entry_price: float
    entry_fee: float
    mark_price: float
    unrealized_pnl: float


@dataclass
class BacktestResult:
    """Everything one run produced.

    ``times_ms``, ``closes`` and ``equity`` have ``n + 1`` entries: the first decision
    candle, then the candle after each step. ``actions``, ``positions`` and
    ``decision_equity`` have ``n``: the action at each decision candle, the position held
    from it to the next close, and the equity right after its fills (what the live
    ledger's ``equity`` table records for that candle).
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
    final_info: dict[str, Any]
    interval_ms: int
    terminated: bool
    risk_events: list[RiskEvent] = field(default_factory=list)
    metrics: Metrics = field(init=False)

    def __post_init__(self) -> None:
        self.metrics = compute_metrics(
            self.equity, self.positions, self.trades, self.final_info["fees_paid"], self.interval_ms
        )

    @property
    def total_pnl(self) -> float:
        """The env's own ``info["total_pnl"]`` at the end of the run."""
        return float(self.final_info["total_pnl"])


def make_env(candles: pd.DataFrame, settings: EnvSettings) -> CryptoTradingEnv:
    """The env a backtest runs in: the training env with the ``[env]`` settings, one
    episode over all the candles."""
    return CryptoTradingEnv.from_settings(candles, settings, random_start=False, episode_length=None)


def run_backtest(strategy: Strategy, env: CryptoTradingEnv, start_index: int | None = None,
                 risk: RiskSettings | None = None) -> BacktestResult:
    """Run ``strategy`` from candle ``start_index`` (default: the env's first step) to the
    end of the env's candles, or until the env terminates (blow-up).

    Args:
        strategy: what decides.
        env: built by :func:`make_env`; it is reset here, so it can be reused.
        start_index: first decision candle (index into ``env.candles``).
        risk: apply the live engine's risk guard (``[risk]``) between the strategy and the
            fill, so the backtest decides what the daemon would; ``None``: no guard.
    """
    start = env.first_step if start_index is None else start_index
    obs, info = env.reset(options={"start_index": start})
    decide = strategy.prepare(MarketContext.from_candles(env.candles))
    guard = None if risk is None else RiskGuard.from_settings(risk.max_drawdown, risk.daily_loss_limit)
    risk_events: list[RiskEvent] = []
    n_max = env.last_step - start
    equity = np.empty(n_max + 1)
    actions = np.zeros(n_max, dtype=np.int8)
    positions = np.zeros(n_max, dtype=np.int8)
    decision_equity = np.empty(n_max)
    equity[0] = info["equity"]
    fills: list[Fill] = []
    step = env.step
    k, terminated = 0, False
    while k < n_max:
        action = decide(env.current_index, obs)
        if guard is not None:
            action, events = guard.check(action, env.portfolio, env.current_time_ms)
            risk_events.extend(events)
        obs, _, terminated, truncated, info = step(action)
        if env.last_fills:
            fills.extend(env.last_fills)
        actions[k] = action
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
        terminated=bool(terminated),
        risk_events=risk_events,
    )


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
    return OpenPosition(p.side, p.qty, p.entry_time_ms, p.entry_price, p.entry_fee, p.last_price, p.unrealized_pnl)


def select_range(
    candles: pd.DataFrame, warmup: int, start: str | None = None, end: str | None = None
) -> tuple[pd.DataFrame, int]:
    """Cut ``candles`` to ``[start, end)`` for a backtest, keeping up to ``warmup``
    candles before ``start`` so the first decision can be taken at ``start`` itself.

    Args:
        candles: validated candles.
        warmup: candles needed before the first decision (``env.first_step``).
        start: first decision time (inclusive), any date-time pandas parses (UTC).
        end: end time (exclusive).

    Returns:
        ``(frame, start_index)``: the candles to build the env on and the first decision
        candle's index in it (``warmup`` when there was enough history before ``start``;
        otherwise decisions begin later, after the warm-up inside the range).

    Raises:
        RangeError: an unparsable date, ``start >= end``, or no candles in the range.
    """
    times = candles["open_time_ms"].to_numpy()
    start_ms, end_ms = parse_range(start, end)
    first = 0 if start_ms is None else int(np.searchsorted(times, start_ms, side="left"))
    stop = len(times) if end_ms is None else int(np.searchsorted(times, end_ms, side="left"))
    span = f"the data covers {format_ms(times[0])} .. {format_ms(times[-1])}"
    if first >= stop:
        raise RangeError(f"no candles in [{start or 'start'}, {end or 'end'}); {span}")
    begin = max(0, first - warmup)
    start_index = max(first - begin, warmup)
    if stop - begin < start_index + 2:
        raise RangeError(
            f"[{start or 'start'}, {end or 'end'}) leaves {stop - begin} candles: need {warmup} of warm-up "
            f"before the first decision and at least 2 to trade; {span}"
        )
    return candles.iloc[begin:stop].reset_index(drop=True), start_index


def parse_range(start: str | None, end: str | None) -> tuple[int | None, int | None]:
    """``--from``/``--to`` as epoch ms (``None`` where not given).

    Raises:
        RangeError: an unparsable date, or ``start >= end``.
    """
    start_ms = None if start is None else _parse_time_ms(start, "--from")
    end_ms = None if end is None else _parse_time_ms(end, "--to")
    if start_ms is not None and end_ms is not None and start_ms >= end_ms:
        raise RangeError(f"--from {start} is not before --to {end}")
    return start_ms, end_ms


def _parse_time_ms(text: str, flag: str) -> int:
    """ISO 8601 date or date-time (naive = UTC) to epoch ms; strict, so a typo is an error,
    not a guess."""
    try:
        stamp = pd.to_datetime(text, format="ISO8601")
    except (ValueError, TypeError):
        stamp = pd.NaT
    if stamp is pd.NaT:
        raise RangeError(f"{flag} {text!r} is not a date or date-time (e.g. 2023-03-10 or 2023-03-10T12:00)")
    if stamp.tzinfo is not None:
        stamp = stamp.tz_convert("UTC").tz_localize(None)
    return int(stamp.asm8.astype("datetime64[ms]").astype(np.int64))

