"""The live verdict of a trial: did the challenger beat the incumbent and flat on the live
candles it traded?

Both accounts are scored from the same start on every symbol: the incumbent's equity at
the close where the challenger joined, which is the challenger's initial balance (it
started with exactly that money, :meth:`bot.engine.SymbolEngine.join`). From there each
curve is its equity after each of the trial's decisions, as the ledger holds it
(:mod:`state.account_curves`), scored by the one metrics module; flat keeps the starting
equity. The configured metric, averaged over the trial's symbols, goes through the same
gate as the holdout (:func:`trainer.retrain.gate.gate`), with the margin the trial was
opened with.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from env.intervals import grid
from state.account_curves import AccountCurve, account_curves
from state.records import LiveTrial
from trainer.evaluation.account_figures import AccountFigures, symbol_figures
from trainer.evaluation.metrics import Metrics, compute_metrics
from trainer.retrain.gate import gate, metric_value

LIVE = "live trial"


@dataclass(frozen=True, slots=True)
class LiveVerdict:
    """Whether the challenger earned its promotion, why, and the figures it was decided on."""

    promote: bool
    reason: str
    metrics: dict[str, Any]


def judge_trial(conn: sqlite3.Connection, trial: LiveTrial) -> LiveVerdict:
    """Score the trial's challenger, incumbent and flat on each symbol's trial candles (see
    the module docstring); run it inside one read transaction."""
    roles: dict[str, list[Metrics]] = {"candidate": [], "incumbent": [], "flat": []}
    per_symbol: dict[str, Any] = {}
    for symbol in trial.symbols:
        challenger, incumbent = _curves(conn, trial, symbol)
        scored = {"candidate": symbol_figures(challenger), "incumbent": symbol_figures(incumbent)}
        flat = _flat(challenger)
        for role, metrics in (("candidate", scored["candidate"].metrics), ("incumbent", scored["incumbent"].metrics),
                              ("flat", flat)):
            roles[role].append(metrics)
        per_symbol[symbol] = {"first_ms": int(challenger.open_time_ms[0]), "last_ms": int(challenger.open_time_ms[-1]),
                              "start_equity": challenger.start_equity, "flat": flat.to_dict()} | {
            role: _summary(figures) for role, figures in scored.items()}
    scores = {role: metric_value(values, trial.metric) for role, values in roles.items()}
    decision = gate(scores["candidate"], scores["incumbent"], scores["flat"], metric=trial.metric, margin=trial.margin,
                    incumbent_label=f"account {trial.incumbent_account}", on=LIVE)
    figures = {"metric": trial.metric, "margin": trial.margin, "candles": trial.candles, "scores": scores,
               "symbols": per_symbol}
    return LiveVerdict(decision.promote, decision.reason, figures)


def _curves(conn: sqlite3.Connection, trial: LiveTrial, symbol: str) -> tuple[AccountCurve, AccountCurve]:
    """The challenger's first ``candles`` decisions on ``symbol`` and the incumbent's over
    the same candles, both from the challenger's start."""
    (challenger,) = account_curves(conn, accounts=[trial.challenger_account], symbols=[symbol])
    first, last = int(challenger.open_time_ms[0]), int(challenger.open_time_ms[trial.candles - 1])
    challenger = _first(challenger, trial.candles)
    (incumbent,) = account_curves(conn, start_ms=first, end_ms=last + 1, accounts=[trial.incumbent_account],
                                  symbols=[symbol])
    if len(incumbent.open_time_ms) != trial.candles:
        raise ValueError(f"live trial {trial.trial_id}: account {trial.incumbent_account} decided "
                         f"{len(incumbent.open_time_ms)} of the {trial.candles} {symbol} candles its challenger did")
    return challenger, replace(incumbent, start_equity=challenger.start_equity, start_close=challenger.start_close)


def _first(curve: AccountCurve, n: int) -> AccountCurve:
    return replace(curve, open_time_ms=curve.open_time_ms[:n], equity=curve.equity[:n], notional=curve.notional[:n],
                   close=curve.close[:n], fees_paid=curve.fees_paid[:n], funding_paid=curve.funding_paid[:n],
                   trades=tuple(t for t in curve.trades if t.exit_time_ms <= curve.open_time_ms[n - 1]))


def _flat(curve: AccountCurve) -> Metrics:
    """Flat over the same candles: the starting equity, unchanged."""
    steps = len(curve.equity)
    return compute_metrics(np.full(steps + 1, curve.start_equity), np.zeros(steps), [], 0.0,
                           grid(curve.interval).nominal_ms)


def _summary(figures: AccountFigures) -> dict[str, Any]:
    m = figures.metrics
    return {"final_equity": figures.final_equity, "total_return": m.total_return, "sharpe": m.sharpe,
            "sortino": m.sortino, "calmar": m.calmar, "max_drawdown": m.max_drawdown, "n_trades": m.n_trades,
            "fees_paid": m.fees_paid, "funding_paid": m.funding_paid, "net_exposure": figures.net_exposure,
            "timing": figures.timing}
