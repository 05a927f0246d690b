"""Where a ledger and the backtest that replayed it first differ.

Every logged decision is compared with the backtest's decision at the same candle, in
the order a decision is made: the funding its mark settled, the observation (``obs_hash``, kept by an
:class:`ObservationWitness` since the backtest keeps no observations), the risk events,
the action, every fill with the trade a closing fill finished, and the equity after the
fills. Values are compared with ``==``: bit for bit.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from env.funding import FundingPayment
from env.portfolio import Fill
from env.risk import RiskEvent
from env.types import Action, Observation, Order
from state.decision_log import LoggedDecision
from state.records import observation_hash
from strategies.base import ActionArray, Decider, IndexArray, MarketContext, ObservationBatch, Strategy
from trainer.evaluation.backtest import BacktestResult
from trainer.verification.deciders import decider_label


@dataclass(frozen=True, slots=True)
class Divergence:
    """The first place where the ledger and the backtest differ.

    Args:
        open_time_ms: the decision's candle.
        field: what differs (``funding``, ``obs_hash``, ``risk_events``, ``action``, ``fills``, ``fills[0].price``,
            ``fills[0].trade.net_pnl``, ``equity``; ``decision`` when only one side decided the candle).
        live / backtest: the two values, as text that shows every bit (floats as ``repr``).
        decided_by: who took the live decision (``ppo v0002``; ``recorded action`` for a decision
            replayed from its recorded action; ``-`` when the ledger has none).
    """

    open_time_ms: int
    field: str
    live: str
    backtest: str
    decided_by: str


class ObservationWitness:
    """A strategy's stand-in that keeps the hash of every observation it is shown, by candle
    open time, and decides as the strategy does.

    Args:
        strategy: the strategy to watch.
    """

    def __init__(self, strategy: Strategy) -> None:
        self.strategy = strategy
        self.hashes: dict[int, str] = {}

    @property
    def name(self) -> str:
        return self.strategy.name

    @property
    def history(self) -> int:
        return self.strategy.history

    def act(self, obs: Observation, context: MarketContext) -> Order:
        self.hashes[int(context.open_time_ms[-1])] = observation_hash(obs)
        return self.strategy.act(obs, context)

    def act_batch(self, obs: ObservationBatch, context: MarketContext, steps: IndexArray) -> ActionArray:
        for row, t in zip(obs, steps, strict=True):
            self.hashes[int(context.open_time_ms[t])] = observation_hash(row)
        return self.strategy.act_batch(obs, context, steps)

    def prepare(self, context: MarketContext) -> Decider:
        decide = self.strategy.prepare(context)
        times = context.open_time_ms.tolist()
        hashes = self.hashes

        def witness(t: int, obs: Observation) -> int:
            hashes[times[t]] = observation_hash(obs)
            return decide(t, obs)

        return witness


def first_divergence(log: Sequence[LoggedDecision], rerun_from: int, result: BacktestResult,
                     hashes: dict[int, str]) -> Divergence | None:
    """The first decision where ``log`` and ``result`` differ, walking both in candle order.

    Args:
        log: the ledger's decisions, from the backtest's first decision candle on.
        rerun_from: decisions before this index were replayed from their recorded actions.
        result: the backtest of the ledger's candles.
        hashes: the backtest's observation hashes by candle (:class:`ObservationWitness`).
    """
    fills: defaultdict[int, list[Fill]] = defaultdict(list)
    for fill in result.fills:
        fills[fill.time_ms].append(fill)
    events: defaultdict[int, list[RiskEvent]] = defaultdict(list)
    for event in result.risk_events:
        events[event.time_ms].append(event)
    funding = {p.time_ms - result.interval_ms: p for p in result.funding}  # by the candle whose mark paid it
    steps = result.times_ms[:-1].tolist()  # the backtest's decision candles
    for k, live in enumerate(log):
        by = "recorded action" if k < rerun_from else decider_label(live)
        if k == len(steps):  # the env ended the run early (a negative equity)
            return Divergence(live.open_time_ms, "decision", Action(live.action).name,
                              "none (the backtest ended: equity below zero)", by)
        t = steps[k]
        if t != live.open_time_ms:  # the backtest decides every candle: the ledger skipped candle t
            return Divergence(t, "decision", "none", Action(int(result.actions[k])).name, "-")
        differs = _compare(live, funding.get(t), hashes.get(t), events[t], int(result.actions[k]), fills[t],
                           float(result.decision_equity[k]))
        if differs is not None:
            return Divergence(t, *differs, by)
    return None


def _compare(live: LoggedDecision, funding: FundingPayment | None, obs_hash: str | None, events: list[RiskEvent],
             action: int, fills: list[Fill], equity: float) -> tuple[str, str, str] | None:
    """``(field, live, backtest)`` of the first field that differs."""
    if live.funding != funding:
        return "funding", repr(live.funding), repr(funding)
    if live.obs_hash != obs_hash:
        return "obs_hash", live.obs_hash, str(obs_hash)
    if list(live.risk_events) != events:
        return "risk_events", _events(live.risk_events), _events(events)
    if live.action != action:
        return "action", Action(live.action).name, Action(action).name
    if list(live.fills) != fills:
        return _fill_difference(live.fills, fills)
    if live.equity != equity:
        return "equity", repr(live.equity), repr(equity)
    return None


def _fill_difference(live: Sequence[Fill], backtest: Sequence[Fill]) -> tuple[str, str, str]:
    if len(live) != len(backtest):
        return "fills", _count(len(live), "fill"), _count(len(backtest), "fill")
    for i, (a, b) in enumerate(zip(live, backtest, strict=True)):
        for key in Fill._fields:
            x, y = getattr(a, key), getattr(b, key)
            if key == "trade" and x is not None and y is not None:
                for trade_key in x._fields:
                    if getattr(x, trade_key) != getattr(y, trade_key):
                        return f"fills[{i}].trade.{trade_key}", repr(getattr(x, trade_key)), repr(getattr(y, trade_key))
            elif x != y:
                return f"fills[{i}].{key}", repr(x), repr(y)
    raise AssertionError("unreachable: the fills differ")


def _events(events: Sequence[RiskEvent]) -> str:
    return "; ".join(f"{e.kind}: {e.detail}" for e in events) or "none"


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"
