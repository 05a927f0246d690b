"""``CryptoTradingEnv``: the seed README's gymnasium environment.

One step is one decision: by default one candle. At step ``t`` the agent sees the features
of candles ``t - lookback_window + 1 .. t`` and its account marked at close ``t``; its
action is filled at close ``t`` (:mod:`env.portfolio`), the clock moves to ``t + 1``, the
account is marked at close ``t + 1`` and the reward (:mod:`env.reward`) is paid. With a
``decision_stride`` above 1 the account then holds through the candles up to the next
decision candle (:class:`env.decisions.DecisionCadence`) and the step's reward is the sum
over them; ``action_mode`` chooses what the actions mean (:class:`env.decisions.ActionMode`).
The seed's defaults (``trade`` actions, stride 1, the five-part reward) are the seed's env.

- ``terminated``: equity fell below ``(1 - max_loss) x initial_balance`` (blow-up).
- ``truncated``: the data (or ``episode_length``) ran out.

Candles with a ``funding_rate`` column trade as a perpetual: each mark settles the funding
due at that close (:mod:`env.funding`); without the column there is no funding (spot).

Run ``python -m env.crypto_trading_env`` for the self-test on the bundled real candles.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pandas as pd
from gymnasium import spaces

from config.settings import EnvSettings
from env.candles import CandleDataError, RepairPolicy, normalize_candles
from env.decisions import ActionMode, DecisionCadence
from env.execution import Account, Execution
from env.features import N_FEATURES, WARMUP_CANDLES, compute_features, warmup_prefix
from env.funding import FUNDING_RATE_COLUMN, FundingRate, funding_due_by_candle
from env.intervals import infer_grid
from env.observation import ObservationTable, observation_size
from env.portfolio import Portfolio, PortfolioConfig
from env.reward import BPS, NetReward, RewardMode, RewardWeights, StepReward
from env.risk import RiskGuard
from env.types import Action, EnvInfo, Observation, Order, Side

SAMPLE_CANDLES = Path(__file__).resolve().parent.parent / "data" / "sample" / "btcusdt_1m_2023-03.csv.gz"
_NOTHING_DONE = Execution(Action.HOLD, (), ())


class CryptoTradingEnv(gym.Env[Observation, np.int64]):
    """Single-instrument trading on historical candles.

    Args:
        df: candles with ``timestamp`` (date-time or epoch ms) and ``open high low close
            volume``, and optionally ``funding_rate`` (perpetual funding, :mod:`env.funding`);
            validated by :func:`env.candles.normalize_candles`.
        initial_balance: starting capital (USDT).
        commission: fee rate per fill (0.0004 = 0.04%).
        max_position_size: position notional as a multiple of equity (1.0 = 100%).
        lookback_window: candles of features in each observation.
        reward_scaling: multiplies the reward's bps sum (see :mod:`env.reward`).
        slippage_bps: adverse fill offset in basis points.
        reward_weights: the five reward components' weights.
        episode_length: steps per episode; ``None`` runs to the end of the data.
        random_start: start each episode at a random candle (for training) instead of
            the first one after warm-up. Uses ``self.np_random``, so it is seeded by
            ``reset(seed=...)``.
        repair: what to do with bad candles (default: raise).
        reward_mode: ``seed`` (the five components) or ``net`` (100 x log equity change),
            see :mod:`env.reward`.
        fee_multiplier: the reward charges this many times the fees (the account pays 1x).
        action_mode: what action ``i`` asks for: ``trade`` (the seed's 4 actions), ``target``
            (short/flat/long) or ``long_flat`` (:class:`env.decisions.ActionMode`).
        decision_stride: candles per step; the account holds on the candles between
            decisions, which the clock fixes (:class:`env.decisions.DecisionCadence`).

    Money moves through one :class:`env.execution.Account` (the money step the backtester
    and the live engine share). After each :meth:`step`, :attr:`last_execution` holds what
    the decision did (the trade action carried out, its fills, any risk events), so the
    backtester records trades without a second fill model. The backtester steps one
    candle at a time with any strategy's orders (:meth:`step_candle`): a strategy that
    decides every ``stride`` candles holds in between by itself.

    .. warning:: The first ``warmup_prefix(lookback_window)`` candles
       (:func:`env.features.warmup_prefix`) are never traded: they fill the indicators and
       the first observation window.
    """

    # gymnasium types Env.metadata as an instance attribute, so a ClassVar here fails mypy
    metadata: dict[str, Any] = {"render_modes": ["human"]}  # noqa: RUF012

    def __init__(
        self,
        df: pd.DataFrame,
        initial_balance: float = 100.0,
        commission: float = 0.0004,
        max_position_size: float = 1.0,
        lookback_window: int = 20,
        reward_scaling: float = 1e-4,
        *,
        slippage_bps: float = 0.0,
        reward_weights: RewardWeights | None = None,
        episode_length: int | None = None,
        random_start: bool = False,
        render_mode: str | None = None,
        repair: RepairPolicy = RepairPolicy.STRICT,
        reward_mode: RewardMode | str = RewardMode.SEED,
        fee_multiplier: float = 1.0,
        action_mode: ActionMode | str = ActionMode.TRADE,
        decision_stride: int = 1,
    ) -> None:
        super().__init__()
        if lookback_window < 1:
            raise ValueError(f"lookback_window: must be >= 1, got {lookback_window!r}")
        if episode_length is not None and episode_length < 1:
            raise ValueError(f"episode_length: must be >= 1 or None, got {episode_length!r}")
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode: {render_mode!r} is not one of {self.metadata['render_modes']}")
        if decision_stride < 1:
            raise ValueError(f"decision_stride: must be >= 1, got {decision_stride!r}")
        self.portfolio_config = PortfolioConfig(initial_balance, commission, max_position_size, slippage_bps)
        self.reward_weights = reward_weights or RewardWeights()
        self.reward_scaling = reward_scaling
        self.lookback_window = lookback_window
        self.episode_length = episode_length
        self.random_start = random_start
        self.render_mode = render_mode
        self.reward_mode = RewardMode(reward_mode)
        self.fee_multiplier = fee_multiplier
        self.action_mode = ActionMode(action_mode)
        self._orders = self.action_mode.orders

        self.candles = normalize_candles(df, source="CryptoTradingEnv(df)", repair=repair)
        self.first_step = warmup_prefix(lookback_window)
        if len(self.candles) < self.first_step + 2:
            raise CandleDataError(
                "CryptoTradingEnv(df)",
                f"{len(self.candles)} candles is too short: need at least {self.first_step + 2} "
                f"({WARMUP_CANDLES} warm-up + lookback_window {lookback_window} + 1 step)",
            )
        self.features = compute_features(self.candles).astype(np.float32)
        self._observations = ObservationTable(self.features, lookback_window)
        self._seed_reward = StepReward(self.reward_weights, reward_scaling, initial_balance, fee_multiplier)
        self._net_reward = NetReward(fee_multiplier) if self.reward_mode is RewardMode.NET else None
        self._closes: list[float] = self.candles["close"].to_numpy(dtype=np.float64).tolist()
        times = self.candles["open_time_ms"].to_numpy(dtype=np.int64)
        self._times_ms: list[int] = times.tolist()
        self.funding = FUNDING_RATE_COLUMN in self.candles
        """Whether the candles carry funding (a perpetual) and every mark settles it."""
        self._funding_due: list[FundingRate | None] = (
            funding_due_by_candle(times, self.candles[FUNDING_RATE_COLUMN].to_numpy())
            if self.funding else [None] * len(self.candles))
        self.last_step = len(self.candles) - 1
        self.cadence = DecisionCadence(decision_stride, infer_grid(times))
        decides = self.cadence.decision_candles(times)
        self._decision_candles = np.flatnonzero(decides)
        self._decides: list[bool] = decides.tolist()

        self.action_space = spaces.Discrete(self.action_mode.n_actions)
        self.observation_space = spaces.Box(
            low=-np.inf, high=np.inf, shape=(observation_size(lookback_window),), dtype=np.float32
        )
        self.portfolio = Portfolio(self.portfolio_config)
        self.account = Account(self.portfolio)
        self._t = self.first_step
        self._end = self.last_step
        self._flat_steps = 0
        self.last_execution = _NOTHING_DONE
        self._blowup_equity = initial_balance * (1.0 - self.reward_weights.max_loss)

    @classmethod
    def from_settings(cls, df: pd.DataFrame, settings: EnvSettings, **kwargs: Any) -> CryptoTradingEnv:
        """Build the env from the ``[env]`` settings section (plus any keyword overrides)."""
        params = settings.model_dump()
        reward = params.pop("reward")
        params |= {"reward_mode": reward.pop("mode"), "fee_multiplier": reward.pop("fee_multiplier")}
        return cls(df, reward_weights=RewardWeights(**reward), **(params | kwargs))

    @property
    def decision_stride(self) -> int:
        """Candles per step (:class:`env.decisions.DecisionCadence`)."""
        return self.cadence.stride

    # ------------------------------------------------------------------ API
    def reset(  # type: ignore[override]  # info is an EnvInfo, a dict at run time
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Observation, EnvInfo]:
        """Start an episode.

        Args:
            seed: seeds ``self.np_random`` (the random start).
            options: ``{"start_index": i}`` starts at candle ``i``; ``{"risk_guard": guard}``
                puts a fresh :class:`env.risk.RiskGuard` between the actions and the fills
                for this episode, as the live engine does (the backtester's evaluation spec).

        With a ``decision_stride`` above 1 the episode starts at the first decision candle
        at or after the chosen one (the latest before it, near the end of the data).
        """
        super().reset(seed=seed)
        latest_start = self.last_step - 1
        if options and "start_index" in options:
            start = int(options["start_index"])
            if not self.first_step <= start <= latest_start:
                raise ValueError(f"start_index {start} outside [{self.first_step}, {latest_start}]")
        elif self.random_start:
            latest = max(self.first_step, self.last_step - (self.episode_length or 1))
            start = int(self.np_random.integers(self.first_step, latest + 1))
        else:
            start = self.first_step
        start = self._decision_at_or_after(start, latest_start)
        self._t = start
        self._end = self.last_step if self.episode_length is None else min(self.last_step, start + self.episode_length)
        self._flat_steps = 0
        self.last_execution = _NOTHING_DONE
        guard: RiskGuard | None = options.get("risk_guard") if options else None
        self.portfolio = Portfolio(self.portfolio_config)
        self.account = Account(self.portfolio, guard)
        self.account.mark(self._closes[start], self._times_ms[start], self._funding_due[start])
        return self._observation(), self._info()

    def step(  # type: ignore[override]  # info is an EnvInfo, a dict at run time
        self, action: int | np.integer
    ) -> tuple[Observation, float, bool, bool, EnvInfo]:
        """Take policy action ``action`` (in :attr:`action_mode`) at the current candle, then
        hold to the next decision candle (one candle with the default stride)."""
        index = int(action)
        if not 0 <= index < len(self._orders):
            raise ValueError(f"invalid action {action!r}: the {self.action_mode} action mode has actions "
                             f"0..{len(self._orders) - 1}")
        return self._step(self._orders[index], hold=self.cadence.stride > 1)

    def step_candle(self, order: Order) -> tuple[Observation, float, bool, bool, EnvInfo]:
        """One candle, whatever the env's action mode and stride: carry out ``order`` (a trade
        action or a target, :data:`env.types.Order`) and mark the next close. The
        backtester's step: every strategy speaks orders and holds between its own decisions."""
        return self._step(order, hold=False)

    def _step(self, order: Order, *, hold: bool) -> tuple[Observation, float, bool, bool, EnvInfo]:
        execution, decision_equity, reward, blew_up = self._candle(order)
        self.last_execution = execution
        if hold:
            decides, end = self._decides, self._end
            while not blew_up and self._t < end and not decides[self._t]:
                _, _, held, blew_up = self._candle(Action.HOLD)
                reward += held
        t = self._t
        if self.render_mode == "human":
            self.render()
        info = self._info()
        info["fills"] = len(execution.fills)
        info["decision_equity"] = decision_equity
        return self._observations.at(t, self.portfolio), reward, blew_up, t >= self._end and not blew_up, info

    def _candle(self, order: Order) -> tuple[Execution, float, float, bool]:
        """Carry out ``order`` at the current candle and mark the next: the execution, the
        equity right after its fills, the candle's reward and whether the account blew up."""
        portfolio = self.portfolio
        equity_before, fees_before = portfolio.equity, portfolio.fees_paid
        execution = self.account.execute(order)
        realized_net = 0.0
        for fill in execution.fills:
            if fill.trade is not None:
                realized_net += fill.trade.net_pnl
        unrealized_before = portfolio.unrealized_pnl
        decision_equity = portfolio.equity
        t = self._t + 1
        self._t = t
        equity = self.account.mark(self._closes[t], self._times_ms[t], self._funding_due[t])
        unrealized_now = portfolio.unrealized_pnl
        self._flat_steps = self._flat_steps + 1 if portfolio.side == Side.FLAT else 0
        blew_up = equity < self._blowup_equity
        fees = portfolio.fees_paid - fees_before
        if self._net_reward is not None:
            reward = self._net_reward(equity_before, equity, fees)
        else:
            reward = self._seed_reward(realized_net, unrealized_now - unrealized_before, unrealized_now,
                                       self._flat_steps, blew_up, fees)
        return execution, decision_equity, reward, blew_up

    def render(self) -> None:
        if self.render_mode == "human":
            p = self.portfolio
            print(
                f"t={self._t} time={pd.Timestamp(self._times_ms[self._t], unit='ms')} price={p.last_price:.2f} "
                f"position={p.side:+d} equity={p.equity:.4f} trades={p.n_trades}"
            )

    # -------------------------------------------------------------- helpers
    @property
    def current_index(self) -> int:
        """Index (into :attr:`candles`) of the candle the next action is taken at."""
        return self._t

    @property
    def current_time_ms(self) -> int:
        """Open time (epoch ms) of the candle the next action is taken at."""
        return self._times_ms[self._t]

    def _decision_at_or_after(self, start: int, latest: int) -> int:
        """The first decision candle in ``[start, latest]``, else the last one before ``start``
        (``start`` itself with the default stride)."""
        if self.cadence.stride == 1:
            return start
        candles = self._decision_candles
        i = int(np.searchsorted(candles, start))
        if i < len(candles) and candles[i] <= latest:
            return int(candles[i])
        return int(candles[i - 1]) if i > 0 and candles[i - 1] >= self.first_step else start

    def _observation(self) -> Observation:
        return self._observations.at(self._t, self.portfolio)

    def _info(self) -> EnvInfo:
        p = self.portfolio
        return {
            "balance": p.cash,
            "equity": p.equity,
            "total_pnl": p.total_pnl,
            "realized_pnl": p.realized_pnl,
            "unrealized_pnl": p.unrealized_pnl,
            "fees_paid": p.fees_paid,
            "funding_paid": p.funding_paid,
            "win_rate": p.win_rate,
            "total_trades": p.n_trades,
            "position": p.side,
            "max_drawdown": p.max_drawdown,
            "price": p.last_price,
            "timestamp_ms": self._times_ms[self._t],
            "step": self._t,
        }


def self_test(path: Path = SAMPLE_CANDLES) -> list[str]:
    """Checks run by ``python -m env.crypto_trading_env``; returns the failures."""
    import warnings

    from gymnasium.utils.env_checker import check_env

    from env.candles import load_candles

    failures: list[str] = []
    df = load_candles(path).iloc[:3000]
    env = CryptoTradingEnv(df, initial_balance=100.0)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*Box observation space (min|max)imum value is")
        check_env(env, skip_render_check=True)
    obs, info = env.reset(seed=7)
    if obs.shape != (N_FEATURES * env.lookback_window + 5,):
        failures.append(f"observation shape {obs.shape}")
    rng = np.random.default_rng(7)
    actions = rng.choice(len(Action), size=len(df), p=[0.94, 0.02, 0.02, 0.02])  # a trader who mostly waits
    done, steps, terminated = False, 0, False
    while not done:
        obs, reward, terminated, truncated, info = env.step(actions[steps])
        done = terminated or truncated
        steps += 1
        if not np.isfinite(obs).all() or not np.isfinite(reward):
            failures.append(f"non-finite observation or reward at step {steps}")
            break
    p = env.portfolio
    identity = p.realized_pnl + p.unrealized_pnl - p.fees_paid - p.funding_paid
    if abs(identity - info["total_pnl"]) > 1e-9 * BPS:
        failures.append(f"PnL identity broken: {identity} != {info['total_pnl']}")
    if steps != env.last_step - env.first_step and not terminated:
        failures.append(f"episode ran {steps} steps, expected {env.last_step - env.first_step}")
    if info["total_trades"] == 0:
        failures.append("random actions made no trades")
    print(f"Final balance: ${info['balance']:.2f}  equity: ${info['equity']:.2f}")
    print(f"Total PnL: ${info['total_pnl']:.2f}")
    print(f"Win rate: {info['win_rate'] * 100:.1f}%")
    print(f"Total trades: {info['total_trades']}  steps: {steps}")
    return failures


if __name__ == "__main__":
    import sys

    problems = self_test()
    if problems:
        print("CryptoTradingEnv test FAILED:\n  " + "\n  ".join(problems))
        sys.exit(1)
    print("✅ CryptoTradingEnv test completed successfully!")
