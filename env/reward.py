"""The seed's five reward components, with weights a caller can change.

All components are measured in basis points of the initial balance, and the env
multiplies their weighted sum by ``reward_scaling`` (seed default 1e-4), so with the
default weights a step's reward is roughly the step's PnL as a fraction of the
starting capital: +0.01 for a trade that made 1%.

1. **realized** (high weight): net PnL (after both fees) of trades closed this step.
2. **unrealized** (low weight): the mark-to-market move of the open position over the
   step: dense feedback while a position is held.
3. **losing_hold** (penalty): the size of the open position's loss, each step it is
   held at a loss.
4. **inactivity** (penalty): a flat charge per step once the account has been flat for
   more than ``inactivity_steps`` steps in a row.
5. **blowup** (big penalty): charged once, on the step equity falls below
   ``(1 - max_loss) x initial_balance``; the episode terminates there.
"""

from __future__ import annotations

from dataclasses import dataclass

BPS = 10_000.0


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
    """The reward function of one env: weights, scaling and balance folded into
    constants once, because it runs on every step of training.

    Args:
        weights: the five components' weights.
        reward_scaling: multiplies the weighted bps sum (the seed's ``reward_scaling``).
        initial_balance: the account's starting capital (PnL is measured in bps of it).
    """

    __slots__ = ("_blowup", "_inactivity", "_inactivity_steps", "_losing_hold", "_realized", "_unrealized")

    def __init__(self, weights: RewardWeights, reward_scaling: float, initial_balance: float) -> None:
        per_quote = reward_scaling * BPS / initial_balance  # reward per unit of quote-currency PnL
        self._realized = weights.realized * per_quote
        self._unrealized = weights.unrealized * per_quote
        self._losing_hold = weights.losing_hold * per_quote
        self._inactivity = weights.inactivity * reward_scaling
        self._inactivity_steps = weights.inactivity_steps
        self._blowup = weights.blowup * reward_scaling

    def __call__(self, realized_net: float, unrealized_move: float, unrealized_now: float, flat_steps: int,
                 blew_up: bool) -> float:
        """Reward of one step. PnL arguments are in the quote currency.

        Args:
            realized_net: net PnL of the trades closed this step.
            unrealized_move: change of the open position's unrealised PnL over the step.
            unrealized_now: unrealised PnL at the step's closing mark.
            flat_steps: consecutive steps the account has been flat.
            blew_up: the account fell below the blow-up threshold this step.
        """
        reward = self._realized * realized_net + self._unrealized * unrealized_move
        if unrealized_now < 0:
            reward += self._losing_hold * unrealized_now
        if flat_steps > self._inactivity_steps:
            reward -= self._inactivity
        if blew_up:
            reward -= self._blowup
        return reward
