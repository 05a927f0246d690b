"""The models and retraining page: one time line of what happened to the service's models.

Events, newest first: a model registered, promoted, or rolled back to (a promotion of a
model created before the one it replaced, from ``model_promotions``), a retrain run with
its holdout verdict and figures, a candidate's live trial with its live verdict and figures
(``trial``: when it ended, else when it started or was opened), a risk control firing, a
daemon session starting or stopping.
Pages are cut by a keyset cursor (time, kind, id), so events that arrive while someone
reads older pages neither repeat nor go missing.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from typing import Any

from state.queries.scope import EVERYTHING, Scope

MAX_EVENTS = 500

_EVENTS = """
SELECT m.created_ms AS time_ms, 'model' AS kind, m.rowid AS id, m.version AS version, m.symbol AS symbol,
       m.status AS status, m.parent_version AS detail, m.metrics AS figures, NULL AS account
FROM models m
UNION ALL
SELECT p.promoted_ms, CASE WHEN n.created_ms < o.created_ms THEN 'rollback' ELSE 'promotion' END, p.promotion_id,
       p.version, p.symbol, NULL, p.replaced_version, NULL, NULL
FROM model_promotions p JOIN models n ON n.version = p.version LEFT JOIN models o ON o.version = p.replaced_version
UNION ALL
SELECT coalesce(r.finished_ms, r.started_ms), 'retrain', r.retrain_id, r.candidate_version, NULL, r.status, r.reason,
       r.metrics, NULL
FROM retrain_runs r
UNION ALL
SELECT coalesce(t.finished_ms, t.started_ms, t.created_ms), 'trial', t.trial_id, t.candidate_version, NULL, t.status,
       coalesce(t.reason, 'trading as account ' || t.challenger_account || ' beside account ' || t.incumbent_account
                || ' for ' || t.candles || ' candles'), t.metrics, t.challenger_account
FROM live_trials t
UNION ALL
SELECT e.time_ms, 'risk', e.event_id, NULL, e.symbol, e.kind, e.detail, NULL, e.account FROM risk_events e
UNION ALL
SELECT s.started_ms, 'start', s.run_id, s.code_version, NULL, NULL, s.symbols, NULL, NULL FROM runs s
UNION ALL
SELECT s.stopped_ms, 'stop', s.run_id, s.code_version, NULL, NULL, s.stop_reason, NULL, NULL FROM runs s
WHERE s.stopped_ms IS NOT NULL
"""


@dataclass(frozen=True, slots=True)
class TimelineEvent:
    """One event. ``version`` is the model (or the session's code version), ``status`` the
    model's or run's status or the risk control's kind, ``detail`` the parent or replaced
    version, the reason or the detail text, ``figures`` a model's or run's metrics,
    ``account`` the paper account a risk control fired in (a live trial's: its challenger)."""

    time_ms: int
    kind: str
    id: int
    version: str | None
    symbol: str | None
    status: str | None
    detail: str | None
    figures: dict[str, Any] | None
    account: str | None = None

    @property
    def cursor(self) -> str:
        """Where the next (older) page starts."""
        return f"{self.time_ms}:{self.kind}:{self.id}"


def parse_cursor(text: str) -> tuple[int, str, int]:
    """``"time_ms:kind:id"`` (from :attr:`TimelineEvent.cursor`) as a tuple.

    Raises:
        ValueError: not such a cursor.
    """
    time_ms, kind, event_id = text.split(":")
    return int(time_ms), kind, int(event_id)


def timeline(conn: sqlite3.Connection, scope: Scope = EVERYTHING, *, before: tuple[int, str, int] | None = None,
             limit: int = 100) -> list[TimelineEvent]:
    """Up to ``limit`` events older than ``before``, newest first. With a symbol in the
    scope, events of other symbols are left out (shared models and sessions stay)."""
    if not 1 <= limit <= MAX_EVENTS:
        raise ValueError(f"limit must be 1..{MAX_EVENTS}, got {limit}")
    conditions: list[str] = ["1 = 1"]
    params: list[Any] = []
    if scope.symbol is not None:
        conditions.append("(e.symbol IS NULL OR e.symbol = ?)")
        params.append(scope.symbol)
    if before is not None:
        conditions.append("(e.time_ms, e.kind, e.id) < (?, ?, ?)")
        params += before
    rows = conn.execute(
        f"SELECT * FROM ({_EVENTS}) e WHERE {' AND '.join(conditions)} "
        "ORDER BY e.time_ms DESC, e.kind DESC, e.id DESC LIMIT ?", (*params, limit),
    ).fetchall()
    return [TimelineEvent(t, kind, i, version, symbol, status, detail, json.loads(figures) if figures else None,
                          account) for t, kind, i, version, symbol, status, detail, figures, account in rows]
