"""The paper ledger the live engine writes: one transaction per decision, idempotent.

Usage (the engine, per closed candle, after ``execution = account.execute(...)``)::

    async with await Ledger.open("shadow.sqlite") as ledger:
        points = await ledger.resume_points()           # restore portfolios after a restart
        ...
        await ledger.record_decision(DecisionRecord.from_execution(candle, obs, execution, account, ...))

Re-recording a decided candle (a restart that replays the last candles) changes nothing
and returns ``False``. The registry and journals for the trainer and the daemon hang off
the same writer: :attr:`Ledger.registry` and :attr:`Ledger.journal`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import aiosqlite
import pandas as pd

from config.settings import LedgerSettings
from env.candles import RepairPolicy
from env.portfolio import PortfolioState
from env.risk import RiskState
from env.types import Candle
from state.candle_store import (
    INSERT_CANDLE,
    INSERT_FUNDING_RATE,
    SELECT_CANDLES,
    SELECT_FUNDING_RATES,
    candle_params,
    candles_frame,
    select_candles_params,
)
from state.database import Synchronous
from state.decision_sql import (
    INSERT_DECISION,
    RISK_COLUMNS,
    SELECT_DECISION,
    SELECT_POSITION_KEY,
    STATE_FIELDS,
    after_decision,
    decision_params,
)
from state.errors import LedgerConsistencyError
from state.journal import Journal
from state.model_rows import ModelRows
from state.records import DecisionRecord, ResumePoint
from state.writer import WriterConnection, fetch_all

log = logging.getLogger(__name__)

_SELECT_RESUME = (f"SELECT symbol, interval, open_time_ms, initial_balance, {', '.join(STATE_FIELDS)}, "
                  f"{', '.join(RISK_COLUMNS)} FROM positions")


class Ledger:
    """The single writer of a ledger file. Open with :meth:`open`; close with :meth:`close`
    or ``async with``."""

    def __init__(self, writer: WriterConnection) -> None:
        self._writer = writer
        self.path = writer.path
        self.registry = ModelRows(writer)
        self.journal = Journal(writer)

    @classmethod
    async def open(
        cls, path: str | Path, *, lock_timeout_s: float = 5.0, synchronous: Synchronous = "NORMAL"
    ) -> Ledger:
        """Open (creating or migrating as needed) the ledger at ``path``.

        Raises:
            NotALedgerError: the file is not SQLite or holds someone else's tables.
            SchemaVersionError: the file was written by a newer Shadow.
            LedgerLockedError: another writer kept the lock beyond ``lock_timeout_s``.
        """
        writer = await WriterConnection.open(Path(path), lock_timeout_s=lock_timeout_s, synchronous=synchronous)
        return cls(writer)

    @classmethod
    async def from_settings(cls, settings: LedgerSettings) -> Ledger:
        return await cls.open(settings.db_path, lock_timeout_s=settings.lock_timeout_s,
                              synchronous=settings.synchronous)

    async def close(self) -> None:
        await self._writer.close()

    async def __aenter__(self) -> Ledger:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.close()

    # ------------------------------------------------------------- decisions
    async def record_decision(self, record: DecisionRecord) -> bool:
        """Write candle, decision, fills, trades, position and equity in one transaction.

        Returns:
            ``True`` when written, ``False`` when this candle was already decided (nothing
            changes; a differing action or observation is logged as a warning).

        Raises:
            LedgerConsistencyError: the symbol already has a later decision, or one at
                another interval.
            LedgerFullError: the disk is full; nothing of this decision was written.
        """
        async with self._writer.transaction() as db:
            await db.execute(INSERT_CANDLE, candle_params(record.candle))
            rows = await fetch_all(db, INSERT_DECISION, decision_params(record))
            if not rows:
                await self._explain_skip(db, record)
                return False
            decision_id = rows[0][0]
            for sql, params in after_decision(record, decision_id):
                await db.execute(sql, params)
        return True

    async def _explain_skip(self, db: aiosqlite.Connection, record: DecisionRecord) -> None:
        c = record.candle
        stored = list(await db.execute_fetchall(SELECT_DECISION, (c.symbol, c.open_time_ms)))
        if stored:
            action, obs_hash = stored[0]
            if action != record.action or obs_hash != record.obs_hash:
                log.warning("%s %d: already decided %s (obs %s); replay gave %s (obs %s), kept the stored one",
                            c.symbol, c.open_time_ms, action, obs_hash[:12], record.action, record.obs_hash[:12])
            return
        interval, last_ms = (await fetch_all(db, SELECT_POSITION_KEY, (c.symbol,)))[0]
        raise LedgerConsistencyError(
            f"ledger {self.path}: decision for {c.symbol} {c.interval} at {c.open_time_ms} refused: "
            f"the ledger's last {c.symbol} decision is at {last_ms} (interval {interval})"
        )

    async def resume_points(self) -> dict[str, ResumePoint]:
        """Per symbol, the last decided candle and the exact account after it."""
        rows = await self._writer.read(_SELECT_RESUME)
        return {
            row[0]: ResumePoint(
                symbol=row[0], interval=row[1], open_time_ms=row[2], initial_balance=row[3],
                state=PortfolioState(**dict(zip(STATE_FIELDS, row[4:4 + len(STATE_FIELDS)], strict=True))),
                risk=_risk_state(row[4 + len(STATE_FIELDS):]),
            )
            for row in rows
        }

    # --------------------------------------------------------------- candles
    async def store_candles(self, candles: Iterable[Candle]) -> int:
        """Store closed candles (backfill, warm-up); already stored ones are kept as they
        are. Returns how many were new."""
        async with self._writer.transaction() as db:
            before = db.total_changes
            await db.executemany(INSERT_CANDLE, [candle_params(c) for c in candles])
            return db.total_changes - before

    async def store_funding_rates(self, symbol: str, settlements: Iterable[tuple[int, float]], source: str) -> int:
        """Store funding settlements ``(time_ms, rate)`` of ``symbol`` (``source``: ``"ticker"``
        or ``"history"``); a time already stored keeps its first rate. Returns how many were new."""
        async with self._writer.transaction() as db:
            before = db.total_changes
            await db.executemany(INSERT_FUNDING_RATE, [{"symbol": symbol, "time_ms": time_ms, "rate": rate,
                                                        "source": source} for time_ms, rate in settlements])
            return db.total_changes - before

    async def funding_rates(self, symbol: str) -> list[tuple[int, float]]:
        """Every stored funding settlement ``(time_ms, rate)`` of ``symbol``, oldest first."""
        return [(int(t), float(r)) for t, r in await self._writer.read(SELECT_FUNDING_RATES, (symbol,))]

    async def load_candles(
        self,
        symbol: str,
        interval: str,
        *,
        start_ms: int | None = None,
        end_ms: int | None = None,
        repair: RepairPolicy = RepairPolicy.STRICT,
    ) -> pd.DataFrame:
        """Stored candles (inclusive bounds) in :func:`env.candles.load_candles` layout;
        a gap raises :class:`~env.candles.CandleDataError` unless ``repair`` fills it."""
        rows = await self._writer.read(SELECT_CANDLES, select_candles_params(symbol, interval, start_ms, end_ms))
        return candles_frame(rows, f"ledger {self.path} {symbol} {interval}", repair, interval)


def _risk_state(values: Sequence[Any]) -> RiskState:
    day, day_start_equity, drawdown_stopped, daily_stopped = values
    return RiskState(day, day_start_equity, bool(drawdown_stopped), bool(daily_stopped))
