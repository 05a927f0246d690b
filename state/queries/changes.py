"""What was committed to a ledger since a cursor: the feed behind live pages and alerts.

A :class:`Cursor` remembers the newest row seen of each journal (decisions, risk events,
promotions, retrain runs, sessions), the retrain runs still running and those whose candidate is
on a live trial (their verdict comes when the trial ends); :func:`changes_since`
returns what is new after it, as a list of :class:`LedgerEvent` and the newest decided
candle per symbol and per account and symbol, with the cursor to ask from next time. Primary-key seeks only: cheap
enough to ask several times a second on any ledger size.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Cursor:
    """The newest row seen per journal; start with :func:`cursor_now` to skip the past."""

    decision_id: int = 0
    risk_event_id: int = 0
    promotion_id: int = 0
    retrain_id: int = 0
    running_retrains: tuple[int, ...] = ()
    run_id: int = 0
    open_run_ids: tuple[int, ...] = ()
    trial_retrains: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class LedgerEvent:
    """Something an operator wants to hear about.

    ``kind``: ``promotion``, ``rollback``, ``retrain_promoted``, ``retrain_rejected``,
    ``retrain_failed``, ``retrain_ok``, ``retrain_trial`` (a candidate's live trial began),
    ``risk``, ``run_started`` or ``run_stopped``;
    ``subject`` names what it is about (a model version, a symbol, a session);
    ``detail`` is one line of text from the ledger; ``account`` the paper account a risk
    event belongs to.
    """

    kind: str
    time_ms: int
    subject: str
    detail: str
    symbol: str | None = None
    account: str | None = None


@dataclass(frozen=True, slots=True)
class Changes:
    """What is new: events, and the newest decided candle's open time per symbol
    (``decided``) and per account and symbol (``accounts``)."""

    cursor: Cursor
    events: list[LedgerEvent] = field(default_factory=list)
    accounts: dict[str, dict[str, int]] = field(default_factory=dict)

    @property
    def decided(self) -> dict[str, int]:
        """The newest decided candle per symbol, whichever account decided it."""
        newest: dict[str, int] = {}
        for symbols in self.accounts.values():
            for symbol, open_ms in symbols.items():
                newest[symbol] = max(newest.get(symbol, open_ms), open_ms)
        return newest

    @property
    def any(self) -> bool:
        return bool(self.events or self.accounts)


def cursor_now(conn: sqlite3.Connection) -> Cursor:
    """The cursor at the ledger's current state (nothing before it counts as new)."""
    def newest(table: str, key: str) -> int:
        return int(conn.execute(f"SELECT coalesce(max({key}), 0) FROM {table}").fetchone()[0])

    def retrains(status: str) -> tuple[int, ...]:
        return tuple(i for (i,) in conn.execute("SELECT retrain_id FROM retrain_runs WHERE status = ? "
                                                "ORDER BY retrain_id", (status,)))

    open_runs = tuple(i for (i,) in conn.execute("SELECT run_id FROM runs WHERE stopped_ms IS NULL"))
    return Cursor(newest("decisions", "decision_id"), newest("risk_events", "event_id"),
                  newest("model_promotions", "promotion_id"), newest("retrain_runs", "retrain_id"),
                  retrains("running"), newest("runs", "run_id"), open_runs, retrains("trial"))


def changes_since(conn: sqlite3.Connection, cursor: Cursor) -> Changes:
    """Everything committed after ``cursor`` (see the module docstring)."""
    events: list[LedgerEvent] = []
    by_account: dict[str, dict[str, int]] = {}
    for account, symbol, open_ms in conn.execute(  # NOT INDEXED: a rowid range, not a walk of the key's index
            "SELECT account, symbol, max(open_time_ms) FROM decisions NOT INDEXED WHERE decision_id > ? "
            "GROUP BY account, symbol", (cursor.decision_id,)):
        by_account.setdefault(account, {})[symbol] = open_ms
    decision_id = conn.execute("SELECT coalesce(max(decision_id), ?) FROM decisions",
                               (cursor.decision_id,)).fetchone()[0]

    risk_id = cursor.risk_event_id
    for event_id, account, symbol, time_ms, kind, detail in conn.execute(
            "SELECT event_id, account, symbol, time_ms, kind, detail FROM risk_events WHERE event_id > ? "
            "ORDER BY event_id", (risk_id,)):
        events.append(LedgerEvent("risk", time_ms, kind, detail or kind, symbol, account))
        risk_id = event_id

    promotion_id = cursor.promotion_id
    for pid, version, symbol, time_ms, replaced, rollback in conn.execute(
            "SELECT p.promotion_id, p.version, p.symbol, p.promoted_ms, p.replaced_version, "
            "coalesce(n.created_ms < o.created_ms, 0) FROM model_promotions p "
            "JOIN models n ON n.version = p.version LEFT JOIN models o ON o.version = p.replaced_version "
            "WHERE p.promotion_id > ? ORDER BY p.promotion_id", (promotion_id,)):
        market = symbol or "every symbol"
        detail = f"{version} now serves {market}" + (f" (replacing {replaced})" if replaced else "")
        events.append(LedgerEvent("rollback" if rollback else "promotion", time_ms, version, detail, symbol))
        promotion_id = pid

    retrain_id, running, trials = cursor.retrain_id, set(cursor.running_retrains), set(cursor.trial_retrains)
    for rid, status, started, finished, reason in conn.execute(
            "SELECT retrain_id, status, started_ms, finished_ms, reason FROM retrain_runs "
            "WHERE retrain_id > ? OR retrain_id IN (SELECT value FROM json_each(?)) ORDER BY retrain_id",
            (retrain_id, f"[{','.join(map(str, sorted(running | trials)))}]")):
        retrain_id = max(retrain_id, rid)
        if status == "running":
            running.add(rid)
            continue
        running.discard(rid)
        if status == "trial" and rid in trials:
            continue  # still trading live: its verdict is yet to come
        if status == "trial":
            trials.add(rid)
        else:
            trials.discard(rid)
        events.append(LedgerEvent(f"retrain_{status}", finished or started, f"retrain {rid}",
                                  reason or status, None))

    run_id, open_runs = cursor.run_id, set(cursor.open_run_ids)
    for rid, started, stopped, reason in conn.execute(
            "SELECT run_id, started_ms, stopped_ms, stop_reason FROM runs "
            "WHERE run_id > ? OR run_id IN (SELECT value FROM json_each(?)) ORDER BY run_id",
            (run_id, f"[{','.join(map(str, open_runs))}]")):
        if rid > run_id:
            events.append(LedgerEvent("run_started", started, f"session {rid}", "daemon session started"))
            run_id = rid
        if stopped is None:
            open_runs.add(rid)
        elif rid in open_runs or rid > cursor.run_id:
            open_runs.discard(rid)
            events.append(LedgerEvent("run_stopped", stopped, f"session {rid}", reason or "stopped"))
    events.sort(key=lambda e: e.time_ms)
    return Changes(Cursor(decision_id, risk_id, promotion_id, retrain_id, tuple(sorted(running)), run_id,
                          tuple(sorted(open_runs)), tuple(sorted(trials))), events, by_account)
