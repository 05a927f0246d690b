"""Live trials, as rows of ``live_trials``: a retrained candidate that passed the holdout
gate trades as a challenger account beside the incumbent account before it may be promoted.

Each phase change is one transaction, so the ledger never holds half a verdict:

- :meth:`TrialRows.open_trial`: the retraining run ends with status ``trial`` and its trial
  is recorded ``pending`` (the daemon starts it between two candles);
- :meth:`TrialRows.start`: ``running``, from the daemon's next candle on;
- :meth:`TrialRows.finish`: the live verdict, the model's status (``promoted``, which retires
  the model it replaces, or ``rejected``) and the run's final status and reason.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import fields
from typing import Any

from state.model_rows import finish_run, set_model_status
from state.records import LiveTrial, ModelStatus, RetrainStatus, TrialStatus
from state.writer import WriterConnection

_COLUMNS = tuple(f.name for f in fields(LiveTrial))
SELECT_TRIALS = f"SELECT {', '.join(_COLUMNS)} FROM live_trials"


def trial_from_row(row: Sequence[Any]) -> LiveTrial:
    values = dict(zip(_COLUMNS, row, strict=True))
    return LiveTrial(**values | {"symbols": tuple(json.loads(values["symbols"])),
                                 "metrics": json.loads(values["metrics"]), "status": TrialStatus(values["status"])})


class TrialRows:
    """Writes and lists ``live_trials`` (each call is one short transaction)."""

    def __init__(self, writer: WriterConnection) -> None:
        self._writer = writer

    async def open_trial(self, *, retrain_id: int, at_ms: int, reason: str, metrics: dict[str, Any],
                         candidate_version: str, challenger_account: str, incumbent_account: str,
                         symbols: Sequence[str], candles: int, metric: str, margin: float) -> LiveTrial:
        """End retraining run ``retrain_id`` with status ``trial`` and record its trial, pending."""
        async with self._writer.transaction() as db:
            await finish_run(db, self._writer.path, retrain_id, status=RetrainStatus.TRIAL, finished_ms=at_ms,
                             reason=reason, candidate_version=candidate_version, metrics=metrics)
            rows = await db.execute_fetchall(
                "INSERT INTO live_trials (retrain_id, candidate_version, challenger_account, incumbent_account, "
                f"symbols, candles, metric, margin, created_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING "
                f"{', '.join(_COLUMNS)}",
                (retrain_id, candidate_version, challenger_account, incumbent_account, json.dumps(list(symbols)),
                 candles, metric, margin, at_ms))
        return trial_from_row(next(iter(rows)))

    async def start(self, trial_id: int, *, at_ms: int) -> None:
        """The daemon trades the challenger from its next candle on."""
        await self._writer.write("UPDATE live_trials SET status = 'running', started_ms = ? WHERE trial_id = ?",
                                 (at_ms, trial_id))

    async def active(self) -> list[LiveTrial]:
        """The trials still to judge (pending or running), oldest first."""
        rows = await self._writer.read(f"{SELECT_TRIALS} WHERE status IN ('pending', 'running') ORDER BY trial_id")
        return [trial_from_row(row) for row in rows]

    async def finish(self, trial: LiveTrial, *, promote: bool, reason: str, metrics: dict[str, Any], at_ms: int,
                     retire: Sequence[str] = ()) -> None:
        """Record the live verdict, and with it the model's status and the run's outcome.

        Args:
            trial: the trial judged.
            promote: the challenger earned its promotion.
            reason: the live verdict in one line.
            metrics: the figures it was decided on.
            at_ms: when.
            retire: promoted models to retire with a promotion (the per-symbol models a
                shared candidate replaces).
        """
        status = TrialStatus.PROMOTED if promote else TrialStatus.RETIRED
        async with self._writer.transaction() as db:
            await db.execute("UPDATE live_trials SET status = ?, finished_ms = ?, reason = ?, metrics = ? "
                             "WHERE trial_id = ?",
                             (status, at_ms, reason, json.dumps(metrics, sort_keys=True), trial.trial_id))
            await set_model_status(db, self._writer.path, trial.candidate_version,
                                   ModelStatus.PROMOTED if promote else ModelStatus.REJECTED, at_ms)
            for version in retire if promote else ():
                await set_model_status(db, self._writer.path, version, ModelStatus.RETIRED, at_ms)
            await db.execute(
                "UPDATE retrain_runs SET status = ?, reason = reason || '; live: ' || ? WHERE retrain_id = ?",
                (RetrainStatus.PROMOTED if promote else RetrainStatus.REJECTED, reason, trial.retrain_id))
