"""The training reward: the seed's five components (mode ``seed``) or the account's net
change (mode ``net``), and a training-only fee multiplier.

**Mode ``net``** (:class:`NetReward`): ``100 x log(E_after / E_before)`` over the step, the
equity marked before the decision and after the next close, so fees, slippage and a
perpetual's funding (settled at that close, :mod:`env.funding`) are in it; summed over a
run it is 100 x the log of the final return. It is what the account earns, and nothing
else: a policy that trades noise sees exactly what the fees cost it.

**Mode ``seed``** (:class:`StepReward`), the seed's five components:

All components are measured in basis points of the initial balance, and the env
multiplies their weighted sum by ``reward_scaling`` (seed default 1e-4), so with the
default weights a step's reward is roughly the step's PnL as a fraction of the
starting capital: +0.01 for a trade that made 1%.

1. **realized** (high weight): net PnL (after both fees and any funding) of trades closed
   this step.
2. **unrealized** (low weight): the mark-to-market move of the open position over the
   step: dense feedback while a position is held.
3. **losing_hold** (penalty): the size of the open position's loss, each step it is
   held at a loss.
4. **inactivity** (penalty): a flat charge per step once the account has been flat for
   more than ``inactivity_steps`` steps in a row.
5. **blowup** (big penalty): charged once, on the step equity falls below
   ``(1 - max_loss) x initial_balance``; the episode terminates there.

**Fee multiplier** (both modes): the reward charges ``fee_multiplier`` x the fees paid
instead of 1x (the account still pays 1x): the turnover knob. 1.0 leaves the reward as
above; 2.0 makes every trade look twice as expensive to the learner.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum

BPS = 10_000.0
PERCENT = 100.0


class RewardMode(StrEnum):
    """Which reward the env pays (see the module docstring)."""

    SEED = "seed"
    NET = "net"


@dataclass(frozen=True, slots=True)
class RewardWeights:
    """Weights of the five components (see the module docstring).

    Args:
        realized: weight of realised net PnL (bps of initial balance).
        unrealized: weight of the open position's step move (bps).
        losing_hold: weight of the open loss charged per step while losing (bps).
        inactivity: bps charged per step once flat longer than ``inactivity_steps``.
        inactivity_steps: flat steps tolerated before the inactivity charge starts.
        blowup: bps charged on the terminating step (10,000 = the whole initial balance).
        max_loss: fraction of the initial balance whose loss ends the episode (seed: 50%).
    """

    realized: float = 1.0
    unrealized: float = 0.1
    losing_hold: float = 0.01
    inactivity: float = 0.1
    inactivity_steps: int = 240
    blowup: float = 10_000.0
    max_loss: float = 0.5

    def __post_init__(self) -> None:
        for name in ("realized", "unrealized", "losing_hold", "inactivity", "blowup"):
            if getattr(self, name) < 0:
                raise ValueError(f"RewardWeights.{name}: must be >= 0, got {getattr(self, name)!r}")
        if self.inactivity_steps < 0:
            raise ValueError(f"RewardWeights.inactivity_steps: must be >= 0, got {self.inactivity_steps!r}")
        if not 0 < self.max_loss <= 1:
            raise ValueError(f"RewardWeights.max_loss: must be in (0, 1], got {self.max_loss!r}")


class StepReward:
    """The seed's reward (mode ``seed``) of one env: weights, scaling and balance folded
    into constants once, because it runs on every step of training.

    Args:
        weights: the five components' weights.
        reward_scaling: multiplies the weighted bps sum (the seed's ``reward_scaling``).
        initial_balance: the account's starting capital (PnL is measured in bps of it).
        fee_multiplier: the reward charges this many times the fees (the extra at the
            realised PnL's weight, as realised PnL already holds 1x).
    """

    __slots__ = ("_blowup", "_extra_fee", "_inactivity", "_inactivity_steps", "_losing_hold", "_realized",
                 "_unrealized")

    def __init__(self, weights: RewardWeights, reward_scaling: float, initial_balance: float,
                 fee_multiplier: float = 1.0) -> None:
        per_quote = reward_scaling * BPS / initial_balance  # reward per unit of quote-currency PnL
        self._realized = weights.realized * per_quote
        self._extra_fee = (fee_multiplier - 1.0) * self._realized
        self._unrealized = weights.unrealized * per_quote
        self._losing_hold = weights.losing_hold * per_quote
        self._inactivity = weights.inactivity * reward_scaling
        self._inactivity_steps = weights.inactivity_steps
        self._blowup = weights.blowup * reward_scaling

    def __call__(self, realized_net: float, unrealized_move: float, unrealized_now: float, flat_steps: int,
                 blew_up: bool, fees: float = 0.0) -> float:
        """Reward of one step. PnL arguments are in the quote currency.

        Args:
            realized_net: net PnL of the trades closed this step.
            unrealized_move: change of the open position's unrealised PnL over the step.
            unrealized_now: unrealised PnL at the step's closing mark.
            flat_steps: consecutive steps the account has been flat.
            blew_up: the account fell below the blow-up threshold this step.
            fees: fees paid this step (only the fee multiplier's extra charge reads it).
        """
        reward = self._realized * realized_net + self._unrealized * unrealized_move - self._extra_fee * fees
        if unrealized_now < 0:
            reward += self._losing_hold * unrealized_now
        if flat_steps > self._inactivity_steps:
            reward -= self._inactivity
        if blew_up:
            reward -= self._blowup
        return reward


class NetReward:
    """Mode ``net``: ``100 x log(equity_after / equity_before)``, minus the fee multiplier's
    extra charge ``100 x (fee_multiplier - 1) x fees / equity_before``.

    Args:
        fee_multiplier: the reward charges this many times the fees (>= 0).
    """

    __slots__ = ("_extra_fee",)

    def __init__(self, fee_multiplier: float = 1.0) -> None:
        if fee_multiplier < 0:
            raise ValueError(f"fee_multiplier: must be >= 0, got {fee_multiplier!r}")
        self._extra_fee = PERCENT * (fee_multiplier - 1.0)

    def __call__(self, equity_before: float, equity_after: float, fees: float) -> float:
        """Reward of one step: equity at the mark before the decision and at the next close,
        and the fees the decision paid (quote currency)."""
        if equity_before <= 0:
            return 0.0
        return PERCENT * math.log(max(equity_after / equity_before, 1e-12)) - self._extra_fee * fees / equity_before
