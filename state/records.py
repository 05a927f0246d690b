"""The typed records the ledger writes and hands back.

The engine builds one :class:`DecisionRecord` per closed candle from what the money step
returned (:class:`env.execution.Execution`, ``Portfolio.snapshot()``); the ledger only
persists it. :class:`ResumePoint` is what a restarted engine needs to carry on exactly
where it stopped. The registry's and the retraining log's statuses are named here
(:class:`ModelStatus`, :class:`RetrainStatus`); their values are what the ledger stores.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

import numpy as np

from env.candles import format_ms
from env.execution import Account, Execution
from env.funding import FundingPayment
from env.portfolio import Fill, PortfolioState
from env.risk import RiskEvent, RiskState
from env.types import Action, Candle, Observation


def observation_hash(obs: Observation) -> str:
    """sha256 (hex) of the observation's float32 bytes: two runs that built the same
    observation store the same hash, so a replay can be checked without storing vectors."""
    return hashlib.sha256(np.ascontiguousarray(obs, dtype=np.float32).tobytes()).hexdigest()


@dataclass(frozen=True, slots=True)
class DecisionRecord:
    """Everything one decision writes, in one transaction.

    Args:
        candle: the closed candle the decision was taken at.
        obs_hash: :func:`observation_hash` of the observation the strategy saw.
        action: the :class:`~env.types.Action` taken.
        strategy: strategy name (``"ppo"``, ``"flat"``...), ``None`` if unknown.
        model_version: registry version of the model, ``None`` for baselines.
        latency_ms: time from candle close to decision, in milliseconds.
        decided_ms: wall-clock time of the decision (epoch ms, from the engine's clock).
        fills: what ``Portfolio.apply`` returned, in order (closing fills carry their trade).
        state: ``Portfolio.snapshot()`` after the decision.
        equity: ``Portfolio.equity`` after the decision.
        unrealized_pnl: ``Portfolio.unrealized_pnl`` after the decision.
        drawdown: ``Portfolio.drawdown`` after the decision (fraction below peak equity).
        initial_balance: ``Portfolio.config.initial_balance`` (for PnL read-outs).
        run_id: the daemon session (:meth:`state.ledger.Ledger.start_run`), if any.
        risk: the risk guard's state after the decision (kept with the position).
        risk_events: the guard's events raised at this candle (written in the same transaction).
        funding: the funding the open position paid or received at this candle's close
            (:attr:`env.execution.Account.funding_payment`), written in the same transaction.
    """

    candle: Candle
    obs_hash: str
    action: int
    strategy: str | None
    model_version: str | None
    latency_ms: float
    decided_ms: int
    fills: tuple[Fill, ...]
    state: PortfolioState
    equity: float
    unrealized_pnl: float
    drawdown: float
    initial_balance: float
    run_id: int | None = None
    risk: RiskState = field(default_factory=RiskState)
    risk_events: tuple[RiskEvent, ...] = ()
    funding: FundingPayment | None = None

    def __post_init__(self) -> None:
        try:
            Action(self.action)
        except ValueError:
            raise ValueError(f"DecisionRecord.action: {self.action!r} is not an Action (0-3)") from None

    @classmethod
    def from_execution(
        cls,
        candle: Candle,
        obs: Observation,
        execution: Execution,
        account: Account,
        *,
        strategy: str | None,
        model_version: str | None,
        latency_ms: float,
        decided_ms: int,
        run_id: int | None = None,
    ) -> DecisionRecord:
        """The record of ``execution``, just carried out by ``account`` (call right after
        ``account.execute``): the account and its guard as they stand after the fills."""
        portfolio, guard = account.portfolio, account.guard
        return cls(
            candle=candle, obs_hash=observation_hash(obs), action=int(execution.action), strategy=strategy,
            model_version=model_version, latency_ms=latency_ms, decided_ms=decided_ms, fills=execution.fills,
            state=portfolio.snapshot(), equity=portfolio.equity, unrealized_pnl=portfolio.unrealized_pnl,
            drawdown=portfolio.drawdown, initial_balance=portfolio.config.initial_balance, run_id=run_id,
            risk=replace(guard.state) if guard is not None else RiskState(), risk_events=execution.risk_events,
            funding=account.funding_payment,
        )


@dataclass(frozen=True, slots=True)
class ResumePoint:
    """Where a symbol's engine left off: the last decided candle and the account after it.

    ``Portfolio.restore(point.state)`` reproduces the account bit for bit; process the
    candles after ``open_time_ms`` next.
    """

    symbol: str
    interval: str
    open_time_ms: int
    state: PortfolioState
    initial_balance: float
    risk: RiskState = field(default_factory=RiskState)


class ModelStatus(StrEnum):
    """Where a registry model stands (``models.status``)."""

    CANDIDATE = "candidate"
    """Published, not (yet) judged to serve."""
    PROMOTED = "promoted"
    """Serving its symbol and interval; promoting one retires the one before it."""
    REJECTED = "rejected"
    """The retraining gate (or an integrity check) turned it down."""
    RETIRED = "retired"
    """Served once; replaced by a newer promotion."""


class RetrainStatus(StrEnum):
    """How a retraining run stands (``retrain_runs.status``)."""

    RUNNING = "running"
    OK = "ok"
    """Allowed by the schema since version 2; this version never writes it."""
    FAILED = "failed"
    REJECTED = "rejected"
    PROMOTED = "promoted"


@dataclass(frozen=True, slots=True)
class ModelEntry:
    """A row of the ``models`` registry (see docs/state.md for the meaning of each field)."""

    version: str
    path: str
    sha256: str
    created_ms: int
    parent_version: str | None = None
    status: ModelStatus = ModelStatus.CANDIDATE
    symbol: str | None = None
    interval: str | None = None
    data_start_ms: int | None = None
    data_end_ms: int | None = None
    hyperparameters: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    promoted_ms: int | None = None


@dataclass(frozen=True, slots=True)
class RetrainRun:
    """A row of ``retrain_runs``: one scheduled retraining, whatever its outcome."""

    retrain_id: int
    started_ms: int
    status: RetrainStatus
    finished_ms: int | None = None
    reason: str | None = None
    candidate_version: str | None = None
    metrics: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class FeedProblem:
    """Why the live feed is not streaming a symbol: Bybit refused its subscription (a row
    of ``feed_problems``).

    Attributes:
        state: ``"refused"`` (tried again at ``retry_at_ms``) or ``"dropped"`` (until restart).
        reason: Bybit's answer, e.g. ``Invalid symbol :[kline.1.FOOUSDT]``.
        refusals: refusals in a row so far; the symbol is dropped at ``attempts``.
        since_ms: when it was first refused.
        retry_at_ms: when it is tried again (``None`` once dropped).
    """

    state: str
    reason: str
    refusals: int
    attempts: int
    since_ms: int
    retry_at_ms: int | None

    def describe(self) -> str:
        """One line for the log, /health and ``shadow status``."""
        head = f"Bybit refused its subscription {self.refusals} time(s) ({self.reason})"
        if self.state == "dropped":
            return f"{head}; dropped until restart"
        return f"{head}; retry {self.refusals} of {self.attempts - 1} at {format_ms(self.retry_at_ms or 0)} UTC"
