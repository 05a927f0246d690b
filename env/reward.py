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


def step_reward(
    weights: RewardWeights,
    *,
    realized_net: float,
    unrealized_move: float,
    unrealized_now: float,
    flat_steps: int,
    blew_up: bool,
    initial_balance: float,
) -> float:
    """Weighted sum of the five components for one step, in bps of initial balance
    (before ``reward_scaling``). PnL arguments are in the quote currency."""
    to_bps = BPS / initial_balance
    total = weights.realized * realized_net * to_bps + weights.unrealized * unrealized_move * to_bps
    if unrealized_now < 0:
        total += weights.losing_hold * unrealized_now * to_bps
    if flat_steps > weights.inactivity_steps:
        total -= weights.inactivity
    if blew_up:
        total -= weights.blowup
    return total
