"""How the paper account trades: the env and portfolio (``[env]``), the risk limits
(``[risk]``) and the live service's strategy (``[daemon]``)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from config.section import Section, check_spec


class RewardSettings(Section):
    """The training reward (``env/reward.py``): its mode, the fee multiplier, and the weights
    of the seed's five components (mode ``seed``), in bps of the initial balance."""

    mode: Literal["seed", "net"] = Field(
        "seed", description="seed: the five weighted components below; net: 100 x log of the account's equity "
        "change over the step, fees and slippage included")
    fee_multiplier: float = Field(
        1.0, ge=0, le=100, description="the training reward charges this many times the fees the account pays "
        "(the turnover knob; backtests and the daemon always pay 1x)")
    realized: float = Field(1.0, ge=0, description="weight of realised net PnL")
    unrealized: float = Field(0.1, ge=0, description="weight of the open position's per-step move")
    losing_hold: float = Field(0.01, ge=0, description="weight of the open loss, charged per step while losing")
    inactivity: float = Field(0.1, ge=0, description="bps charged per step once flat longer than inactivity_steps")
    inactivity_steps: int = Field(240, ge=0, description="flat steps tolerated before the inactivity charge")
    blowup: float = Field(10_000.0, ge=0, description="bps charged when the account blows up")
    max_loss: float = Field(0.5, gt=0, le=1, description="loss fraction of the initial balance that ends an episode")


class EnvSettings(Section):
    """``CryptoTradingEnv`` and portfolio parameters (the seed's environment settings)."""

    initial_balance: float = Field(100.0, gt=0, description="starting capital in USDT")
    commission: float = Field(0.0004, ge=0, lt=1, description="fee rate per fill (0.0004 = 0.04%)")
    max_position_size: float = Field(1.0, gt=0, le=100, description="position notional as a multiple of equity")
    lookback_window: int = Field(20, ge=1, le=1000, description="candles of features per observation")
    reward_scaling: float = Field(1e-4, gt=0, description="multiplies the reward's bps sum")
    slippage_bps: float = Field(0.0, ge=0, lt=10_000, description="adverse fill offset in basis points")
    action_mode: Literal["trade", "target", "long_flat"] = Field(
        "trade", description="what a trained policy's actions mean: trade (HOLD/BUY/SELL/CLOSE), target "
        "(short/flat/long position) or long_flat (flat/long, for spot); recorded with the model, which the "
        "backtest and the daemon follow")
    decision_stride: int = Field(
        1, ge=1, le=10_000, description="a trained policy decides every this many candles (on the candles closing "
        "at multiples of stride x interval since the epoch) and holds in between; recorded with the model")
    reward: RewardSettings = RewardSettings()


class RiskSettings(Section):
    """Risk controls applied by the paper engine."""

    max_drawdown: float = Field(
        0.25, ge=0, le=1, description="go flat and stop opening positions beyond this drawdown from peak (0 = off)"
    )
    daily_loss_limit: float = Field(
        0.05, ge=0, le=1, description="go flat until the next UTC day beyond this loss from the day's start (0 = off)"
    )


class DaemonSettings(Section):
    """``shadow run``: which strategy trades, and how the service reports on itself.
    Symbols and interval are in ``[feed]``, the account in ``[env]``, limits in ``[risk]``."""

    strategy: str = Field(
        "registry",
        description="'registry' (the promoted model of the model registry) or any strategy spec "
        "('ppo:models/x.zip', 'sma:fast=10,slow=50', 'flat', ...)",
    )
    fallback: str = Field(
        "flat",
        description="baseline traded while the registry has no promoted model (cold start); recorded per decision",
    )
    warmup_candles: int = Field(
        1000, ge=1, le=100_000,
        description="closed candles fetched over REST at first start to warm up the features and the observation; "
        "at least the candles a first decision needs (feature warm-up + [env] lookback_window - 1, checked at start)",
    )
    heartbeat_minutes: float = Field(5.0, gt=0, description="minutes between status lines in the log")
    torch_threads: int = Field(1, ge=1, le=64,
                               description="torch threads for model inference (share the cores with the trainer)")

    @field_validator("strategy", "fallback")
    @classmethod
    def _spec_shape(cls, value: str) -> str:
        return check_spec(value)
