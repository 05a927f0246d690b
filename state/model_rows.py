"""The model registry and the retraining log, as rows of ``models`` and ``retrain_runs``.

The registry directory (zips + ``.meta.json``) belongs to the trainer; these tables are
its index: which version is promoted, where its file is, its sha256 (checked before
loading, because a model zip is a pickle), data range, hyperparameters and metrics.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

import aiosqlite

from state.records import ModelEntry, ModelStatus, RetrainRun, RetrainStatus
from state.writer import WriterConnection

MODEL_STATUSES: tuple[str, ...] = tuple(ModelStatus)
RETRAIN_STATUSES: tuple[str, ...] = tuple(RetrainStatus)

_MODEL_COLUMNS = tuple(f.name for f in fields(ModelEntry))
_JSON_COLUMNS = ("hyperparameters", "metrics")
SELECT_MODELS = f"SELECT {', '.join(_MODEL_COLUMNS)} FROM models"
_RETRAIN_COLUMNS = tuple(f.name for f in fields(RetrainRun))
SELECT_RETRAINS = f"SELECT {', '.join(_RETRAIN_COLUMNS)} FROM retrain_runs"


def models_query(status: str | None) -> tuple[str, tuple[Any, ...]]:
    """SQL and parameters listing models, newest first, optionally of one status."""
    _check_status(status, MODEL_STATUSES, "model")
    where, params = (" WHERE status = ?", (status,)) if status else ("", ())
    return f"{SELECT_MODELS}{where} ORDER BY created_ms DESC, version DESC", params


def model_from_row(row: Sequence[Any]) -> ModelEntry:
    values = dict(zip(_MODEL_COLUMNS, row, strict=True))
    return ModelEntry(**values | {c: json.loads(values[c]) for c in _JSON_COLUMNS}
                      | {"status": ModelStatus(values["status"])})


def retrain_from_row(row: Sequence[Any]) -> RetrainRun:
    values = dict(zip(_RETRAIN_COLUMNS, row, strict=True))
    return RetrainRun(**values | {"metrics": json.loads(values["metrics"]), "status": RetrainStatus(values["status"])})


def _check_status(status: str | None, allowed: tuple[str, ...], what: str) -> None:
    if status is not None and status not in allowed:
        raise ValueError(f"{what} status {status!r} is not one of {', '.join(allowed)}")


async def set_model_status(db: aiosqlite.Connection, ledger: Path, version: str, status: str, at_ms: int) -> None:
    """Change a model's status inside an open transaction (see :meth:`ModelRows.set_model_status`)."""
    _check_status(status, MODEL_STATUSES, "model")
    rows = list(await db.execute_fetchall("SELECT symbol, interval FROM models WHERE version = ?", (version,)))
    if not rows:
        raise LookupError(f"no model {version!r} in ledger {ledger}")
    if status == ModelStatus.PROMOTED:
        symbol, interval = rows[0]
        await db.execute(
            "UPDATE models SET status = 'retired' WHERE status = 'promoted' AND version <> ? "
            "AND symbol IS ? AND interval IS ?",
            (version, symbol, interval),
        )
        await db.execute("UPDATE models SET status = 'promoted', promoted_ms = ? WHERE version = ?", (at_ms, version))
    else:
        await db.execute("UPDATE models SET status = ? WHERE version = ?", (status, version))


async def finish_run(db: aiosqlite.Connection, ledger: Path, retrain_id: int, *, status: str, finished_ms: int,
                     reason: str | None, candidate_version: str | None, metrics: dict[str, Any] | None) -> None:
    """Record how a retraining ended, inside an open transaction (see :meth:`ModelRows.finish_retrain`)."""
    _check_status(status, RETRAIN_STATUSES[1:], "retrain")
    rows = await db.execute_fetchall(
        "UPDATE retrain_runs SET status = ?, finished_ms = ?, reason = ?, candidate_version = ?, metrics = ? "
        "WHERE retrain_id = ? RETURNING retrain_id",
        (status, finished_ms, reason, candidate_version, json.dumps(metrics or {}, sort_keys=True), retrain_id),
    )
    if not rows:
        raise LookupError(f"no retrain run {retrain_id} in ledger {ledger}")


class ModelRows:
    """Writes and lists ``models`` and ``retrain_runs`` (each call is one short transaction)."""

    def __init__(self, writer: WriterConnection) -> None:
        self._writer = writer

    async def add_model(self, entry: ModelEntry) -> None:
        """Register a model file (normally as a ``candidate``)."""
        _check_status(entry.status, MODEL_STATUSES, "model")
        values = asdict(entry) | {c: json.dumps(getattr(entry, c), sort_keys=True) for c in _JSON_COLUMNS}
        try:
            await self._writer.write(
                f"INSERT INTO models ({', '.join(_MODEL_COLUMNS)}) "
                f"VALUES ({', '.join(':' + c for c in _MODEL_COLUMNS)})",
                values,
            )
        except sqlite3.IntegrityError as exc:
            raise ValueError(f"model {entry.version!r} cannot be registered in {self._writer.path}: {exc}") from None

    async def set_model_status(self, version: str, status: str, *, at_ms: int) -> None:
        """Change a model's status. Promoting also retires the model promoted before it
        for the same symbol and interval, in the same transaction, so exactly one is live."""
        async with self._writer.transaction() as db:
            await set_model_status(db, self._writer.path, version, status, at_ms)

    async def list_models(self, status: str | None = None) -> list[ModelEntry]:
        """Registered models, newest first (``status="promoted"`` gives the live ones)."""
        sql, params = models_query(status)
        return [model_from_row(row) for row in await self._writer.read(sql, params)]

    async def start_retrain(self, *, started_ms: int) -> int:
        """Record a retraining starting; returns its ``retrain_id``."""
        rows = await self._writer.write("INSERT INTO retrain_runs (started_ms) VALUES (?) RETURNING retrain_id",
                                        (started_ms,))
        return int(rows[0][0])

    async def finish_retrain(
        self, retrain_id: int, *, status: str, finished_ms: int, reason: str | None = None,
        candidate_version: str | None = None, metrics: dict[str, Any] | None = None,
    ) -> None:
        """Record how a retraining ended: ``ok``, ``failed``, ``rejected`` or ``promoted``
        (``trial``: :meth:`state.trial_rows.TrialRows.open_trial`)."""
        async with self._writer.transaction() as db:
            await finish_run(db, self._writer.path, retrain_id, status=status, finished_ms=finished_ms, reason=reason,
                             candidate_version=candidate_version, metrics=metrics)

    async def list_retrains(self, limit: int = 20) -> list[RetrainRun]:
        """The latest retraining runs, newest first."""
        rows = await self._writer.read(f"{SELECT_RETRAINS} ORDER BY retrain_id DESC LIMIT ?", (limit,))
        return [retrain_from_row(row) for row in rows]
