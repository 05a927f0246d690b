"""Who decides when: strategies taking turns by candle time, and a decision log replayed.

A live ledger records, per decision, which strategy took it: a cold-start fallback, then a
model, then the models hot-swapped in after it. :class:`StrategySchedule` is that history
as one :class:`strategies.base.Strategy`: each candle is decided by the strategy whose
turn it is, so the ordinary backtest replays a ledger through a single decision path.
:class:`RecordedActions` is the degenerate case used for the part of a ledger whose
strategies are not re-run: it takes, at each candle, the action the log recorded.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from env.types import Action, Observation, Order
from strategies.base import ActionArray, Decider, IndexArray, MarketContext, ObservationBatch, Strategy


class StrategySchedule:
    """``strategies[i]`` decides the candles opening at or after ``starts_ms[i]`` and
    before ``starts_ms[i + 1]``; ``strategies[0]`` also decides any candle before
    ``starts_ms[0]``. The same strategy object may take several turns (a rollback).

    Args:
        strategies: the strategies, in the order of their turns.
        starts_ms: the open time of each turn's first candle, increasing.
    """

    def __init__(self, strategies: Sequence[Strategy], starts_ms: Sequence[int]) -> None:
        if not strategies or len(strategies) != len(starts_ms):
            raise ValueError(f"StrategySchedule: {len(strategies)} strategies for {len(starts_ms)} start times")
        starts = np.asarray(starts_ms, dtype=np.int64)
        if (np.diff(starts) <= 0).any():
            raise ValueError("StrategySchedule: start times must increase")
        self.strategies = tuple(strategies)
        self.starts_ms = starts

    @property
    def name(self) -> str:
        return "schedule(" + ", ".join(s.name for s in self.strategies) + ")"

    @property
    def history(self) -> int:
        return max(s.history for s in self.strategies)

    def turns(self, open_time_ms: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
        """The index into :attr:`strategies` of the strategy deciding each candle."""
        return np.maximum(np.searchsorted(self.starts_ms, open_time_ms, side="right") - 1, 0)

    def act(self, obs: Observation, context: MarketContext) -> Order:
        turn = int(self.turns(context.open_time_ms[-1:])[0])
        return self.strategies[turn].act(obs, context)

    def act_batch(self, obs: ObservationBatch, context: MarketContext, steps: IndexArray) -> ActionArray:
        steps = np.asarray(steps, dtype=np.int64)
        turns = self.turns(context.open_time_ms[steps])
        actions = np.empty(len(steps), dtype=np.int64)
        for turn in np.unique(turns):
            rows = turns == turn
            actions[rows] = self.strategies[turn].act_batch(obs[rows], context, steps[rows])
        return actions

    def prepare(self, context: MarketContext) -> Decider:
        unique = {id(s): s for s in self.strategies}
        prepared = {key: s.prepare(context) for key, s in unique.items()}
        deciders = [prepared[id(s)] for s in self.strategies]
        turns: list[int] = self.turns(context.open_time_ms).tolist()

        def decide(t: int, obs: Observation) -> int:
            return deciders[turns[t]](t, obs)

        return decide


class RecordedActions:
    """Takes the action a decision log recorded for each candle (``HOLD`` where it has
    none): a log replayed, with no strategy re-run.

    Args:
        open_time_ms: the logged candles, increasing.
        actions: the action logged for each.
    """

    def __init__(self, open_time_ms: Sequence[int], actions: Sequence[int]) -> None:
        self._actions = dict(zip((int(t) for t in open_time_ms), (int(a) for a in actions), strict=True))

    @property
    def name(self) -> str:
        return "recorded"

    @property
    def history(self) -> int:
        return 1

    def _table(self, open_time_ms: npt.NDArray[np.int64]) -> ActionArray:
        logged = self._actions.get
        return np.fromiter((logged(int(t), Action.HOLD) for t in open_time_ms), np.int64, len(open_time_ms))

    def act(self, obs: Observation, context: MarketContext) -> Action:
        return Action(int(self._table(context.open_time_ms[-1:])[0]))

    def act_batch(self, obs: ObservationBatch, context: MarketContext, steps: IndexArray) -> ActionArray:
        return self._table(context.open_time_ms[np.asarray(steps, dtype=np.int64)])

    def prepare(self, context: MarketContext) -> Decider:
        actions: list[int] = self._table(context.open_time_ms).tolist()

        def decide(t: int, obs: Observation) -> int:
            return actions[t]

        return decide
