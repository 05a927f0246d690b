"""Has the policy converged? Figures of the deterministic policy on the validation slice.

A PPO policy that has made too few updates stays near its random start: its action
probabilities stay spread out (high entropy) and its most likely action changes from one
candle to the next for no reason the market gives, which in a trading env is paid for in
fees (README "Evaluation"). These figures say so, in TensorBoard (``convergence/*``, every
evaluation), in the training log, and in the model's metadata (``diagnostics``):

====================== ======================================================================
entropy                mean entropy (nats) of the policy's action distribution over the
                       validation decisions
entropy_ratio          ``entropy / log(n_actions)``: 1.0 is uniform, 0 always certain
flip_rate              share of consecutive decisions whose most likely action differs
round_trips_per_1000   round trips closed per 1,000 candles of the validation slice
fee_share              fees over the absolute PnL before fees (``None`` when that is 0):
                       above 1.0 the fees alone exceed whatever the trading made or lost
====================== ======================================================================

The policy is run as trained (its action mode and decision stride, no risk guard) through
the training env over each validation frame. It counts as converged when its argmax flips
on fewer than :data:`FLIP_RATE_LIMIT` of its decisions.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from config.settings import EnvSettings
from env.crypto_trading_env import CryptoTradingEnv
from strategies.ppo import NumpyActor, UnsupportedPolicyError

if TYPE_CHECKING:
    from stable_baselines3.common.base_class import BaseAlgorithm

FLIP_RATE_LIMIT = 0.10
"""A policy whose argmax changes on this share of its decisions or more has not converged."""

Logits = Callable[[npt.NDArray[np.float32]], npt.NDArray[np.float64]]


@dataclass(frozen=True, slots=True)
class ConvergenceDiagnostics:
    """The figures of the module docstring, over ``decisions`` decisions on ``candles`` candles."""

    decisions: int
    candles: int
    entropy: float
    entropy_ratio: float
    flip_rate: float
    round_trips_per_1000: float
    fee_share: float | None

    @property
    def converged(self) -> bool:
        return self.flip_rate < FLIP_RATE_LIMIT

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def describe(self) -> str:
        """One line: ``argmax flips on 3.1% of decisions, entropy 0.12 (11% of uniform), ...``."""
        share = self.fee_share
        fees = "no PnL before fees" if share is None else f"fees {100 * share:.0f}% of PnL before fees"
        return (f"argmax flips on {100 * self.flip_rate:.1f}% of {self.decisions:,} decisions, entropy "
                f"{self.entropy:.2f} ({100 * self.entropy_ratio:.0f}% of uniform), "
                f"{self.round_trips_per_1000:.1f} round trips per 1,000 candles, {fees}")

    def warning(self) -> str | None:
        """The one-line warning ``shadow train`` logs for a policy that has not converged."""
        if self.converged:
            return None
        return (f"the policy has not converged: its argmax flips on {100 * self.flip_rate:.0f}% of validation "
                f"decisions (converged: < {100 * FLIP_RATE_LIMIT:.0f}%), entropy {100 * self.entropy_ratio:.0f}% of "
                "uniform; train longer or update more often (smaller --n-steps), see README 'Evaluation'")


def diagnose(model: BaseAlgorithm, frames: Sequence[pd.DataFrame], env_settings: EnvSettings) -> ConvergenceDiagnostics:
    """Run the deterministic policy over each validation frame (module docstring).

    Args:
        model: the policy being trained.
        frames: validation frames, each with its warm-up candles first.
        env_settings: the training env's settings (action mode, stride, costs).
    """
    logits_of = _logits_function(model)
    entropies: list[float] = []
    flips = pairs = trades = candles = 0
    fees = gross = 0.0
    for frame in frames:
        env = CryptoTradingEnv.from_settings(frame, env_settings)
        obs, info = env.reset()
        start, previous, done = env.current_index, -1, False
        while not done:
            logits = logits_of(obs)
            probabilities = np.exp(logits - logits.max())
            probabilities /= probabilities.sum()
            entropies.append(float(-np.sum(probabilities * np.log(np.clip(probabilities, 1e-300, None)))))
            action = int(np.argmax(logits))
            if previous >= 0:
                pairs += 1
                flips += action != previous
            previous = action
            obs, _, terminated, truncated, info = env.step(action)
            done = terminated or truncated
        trades += info["total_trades"]
        candles += env.current_index - start
        fees += info["fees_paid"]
        gross += info["total_pnl"] + info["fees_paid"]
    n_actions = int(model.action_space.n)  # type: ignore[attr-defined]
    entropy = float(np.mean(entropies)) if entropies else 0.0
    return ConvergenceDiagnostics(
        decisions=len(entropies), candles=candles, entropy=entropy,
        entropy_ratio=entropy / math.log(n_actions) if n_actions > 1 else 0.0,
        flip_rate=flips / pairs if pairs else 0.0,
        round_trips_per_1000=1000.0 * trades / candles if candles else 0.0,
        fee_share=fees / abs(gross) if gross else None,
    )


def _logits_function(model: BaseAlgorithm) -> Logits:
    """The policy's logits for one observation: the numpy export when it has one, else torch."""
    from stable_baselines3.common.policies import ActorCriticPolicy

    policy = model.policy
    if not isinstance(policy, ActorCriticPolicy):
        raise TypeError(f"convergence diagnostics need an actor-critic policy, not {type(policy).__name__}")
    try:
        return NumpyActor.from_sb3(policy).logits
    except UnsupportedPolicyError:
        import torch

        def torch_logits(obs: npt.NDArray[np.float32]) -> npt.NDArray[np.float64]:
            with torch.no_grad():
                tensor, _ = policy.obs_to_tensor(obs)
                distribution = policy.get_distribution(tensor)
                logits = distribution.distribution.logits[0]  # type: ignore[union-attr]
                return np.asarray(logits.cpu().numpy(), dtype=np.float64)

        return torch_logits
