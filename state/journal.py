"""The daemon's own history in the ledger: its sessions (``runs``) and the symbols its feed
cannot stream (``feed_problems``). Risk events are written with the decision that raised
them (:class:`state.records.DecisionRecord`)."""

from __future__ import annotations

import json
from collections.abc import Sequence

from state.records import FeedProblem
from state.writer import WriterConnection


class Journal:
    """Writes ``runs`` rows (each call is one short transaction)."""

    def __init__(self, writer: WriterConnection) -> None:
        self._writer = writer

    async def start_run(self, *, started_ms: int, config_hash: str, code_version: str, symbols: Sequence[str],
                        settings: str | None = None) -> int:
        """Record a daemon session starting; returns its ``run_id`` (stamp it on decisions).

        Args:
            settings: the session's resolved settings as JSON (what ``config_hash`` hashes),
                kept so its decisions can be replayed with them (``shadow verify``).
        """
        rows = await self._writer.write(
            "INSERT INTO runs (started_ms, config_hash, code_version, symbols, settings) VALUES (?, ?, ?, ?, ?) "
            "RETURNING run_id",
            (started_ms, config_hash, code_version, json.dumps(list(symbols)), settings),
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

    async def set_feed_problem(self, run_id: int, symbol: str, problem: FeedProblem | None) -> None:
        """Record why ``symbol`` is not streaming in session ``run_id``; ``None`` clears it."""
        if problem is None:
            await self._writer.write("DELETE FROM feed_problems WHERE run_id = ? AND symbol = ?", (run_id, symbol))
            return
        await self._writer.write(
            "INSERT INTO feed_problems (run_id, symbol, state, reason, refusals, attempts, since_ms, retry_at_ms) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (run_id, symbol) DO UPDATE SET state = excluded.state, "
            "reason = excluded.reason, refusals = excluded.refusals, attempts = excluded.attempts, "
            "retry_at_ms = excluded.retry_at_ms",
            (run_id, symbol, problem.state, problem.reason, problem.refusals, problem.attempts, problem.since_ms,
             problem.retry_at_ms),
        )
