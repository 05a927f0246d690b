"""Schema 7's promotion log: a version-6 ledger's promotions are carried over, and every
later promotion is logged by the triggers, whoever promotes."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

from state.database import prepare_for_writing
from state.ledger import Ledger
from state.migrations import LATEST_VERSION, migrate
from state.records import ModelEntry

_MODEL = ("INSERT INTO models (version, status, path, sha256, symbol, interval, created_ms, promoted_ms) "
          "VALUES (?, ?, ?, ?, 'BTCUSDT', '1m', ?, ?)")


def _log(path: Path) -> list[tuple]:
    with closing(sqlite3.connect(path)) as conn:
        return conn.execute("SELECT version, symbol, interval, promoted_ms, replaced_version FROM model_promotions "
                            "ORDER BY promotion_id").fetchall()


async def test_a_version_3_registry_keeps_its_promotions_and_new_ones_are_logged(tmp_path: Path) -> None:
    path = tmp_path / "v3.sqlite"
    conn = sqlite3.connect(path, isolation_level=None)
    assert migrate(conn, path, target=6) == [1, 2, 3, 4, 5, 6]
    with conn:  # what a version-6 daemon left: v1 promoted then retired for v2, v3 rejected
        conn.execute("BEGIN")
        conn.execute(_MODEL, ("v1", "retired", "v1.zip", "1" * 64, 100, 110))
        conn.execute(_MODEL, ("v2", "promoted", "v2.zip", "2" * 64, 200, 210))
        conn.execute(_MODEL, ("v3", "rejected", "v3.zip", "3" * 64, 300, None))
    conn.close()

    assert prepare_for_writing(path, 1.0) == (6, list(range(7, LATEST_VERSION + 1)))
    assert _log(path) == [("v1", "BTCUSDT", "1m", 110, None), ("v2", "BTCUSDT", "1m", 210, "v1")]

    async with await Ledger.open(path) as ledger:
        await ledger.registry.set_model_status("v1", "promoted", at_ms=400)  # `shadow models promote v1`
        await ledger.registry.set_model_status("v3", "retired", at_ms=410)  # not a promotion
        await ledger.registry.add_model(ModelEntry("v4", "v4.zip", "4" * 64, 500, status="promoted", symbol="BTCUSDT",
                                                   interval="1m", promoted_ms=500))
    assert _log(path)[2:] == [("v1", "BTCUSDT", "1m", 400, "v2"), ("v4", "BTCUSDT", "1m", 500, "v1")]
    with closing(sqlite3.connect(path)) as conn:
        assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
        assert conn.execute("SELECT version FROM models WHERE status = 'promoted' ORDER BY version").fetchall() == [
            ("v1",), ("v4",)]  # add_model does not retire: the registry's own rule, unchanged
