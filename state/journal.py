"""The daemon's own history in the ledger: sessions (``runs``) and risk events."""

from __future__ import annotations

import json
from collections.abc import Sequence

from state.writer import WriterConnection


class Journal:
    """Writes ``runs`` and ``risk_events`` rows (each call is one short transaction)."""

    def __init__(self, writer: WriterConnection) -> None:
        self._writer = writer

    async def start_run(self, *, started_ms: int, config_hash: str, code_version: str, symbols: Sequence[str]) -> int:
        """Record a daemon session starting; returns its ``run_id`` (stamp it on decisions)."""
        rows = await self._writer.write(
            "INSERT INTO runs (started_ms, config_hash, code_version, symbols) VALUES (?, ?, ?, ?) RETURNING run_id",
            (started_ms, config_hash, code_version, json.dumps(list(symbols))),
        )
        return int(rows[0][0])

    async def stop_run(self, run_id: int, *, stopped_ms: int, reason: str) -> None:
        """Record a clean stop (a session without ``stopped_ms`` ended in a crash or is running)."""
        rows = await self._writer.write(
            "UPDATE runs SET stopped_ms = ?, stop_reason = ? WHERE run_id = ? RETURNING run_id",
            (stopped_ms, reason, run_id),
        )
        if not rows:
            raise LookupError(f"no run {run_id} in ledger {self._writer.path}")

    async def record_risk_event(
        self, *, time_ms: int, kind: str, detail: str | None = None, symbol: str | None = None,
        run_id: int | None = None,
    ) -> int:
        """Record a risk control firing (``kind`` such as ``max_drawdown`` or ``daily_loss``)."""
        rows = await self._writer.write(
            "INSERT INTO risk_events (symbol, time_ms, kind, detail, run_id) VALUES (?, ?, ?, ?, ?) RETURNING event_id",
            (symbol, time_ms, kind, detail, run_id),
        )
        return int(rows[0][0])
