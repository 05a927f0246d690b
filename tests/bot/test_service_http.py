"""``/health``, ``/metrics`` and ``/status`` of a daemon replaying real candles from the local
Bybit server: health follows a stall and a locked ledger, the metrics match the ledger,
the status is ``shadow status --json``."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path

import pandas as pd
import pytest
from prometheus_client.parser import text_string_to_metric_families
from typer.testing import CliRunner

from bot.cli import app
from state.ledger import Ledger
from tests.bot.service_harness import HISTORY, running_service

REPLAYED = 70


@pytest.fixture(scope="module")
def frame(btc_candles: pd.DataFrame) -> pd.DataFrame:
    return btc_candles.iloc[: HISTORY + REPLAYED].reset_index(drop=True)


async def test_health_fails_while_the_stream_stalls_and_recovers_after_the_reconnect(
        tmp_path: Path, frame: pd.DataFrame) -> None:
    """The server keeps the connection open but goes silent from candle 25 on: the stream
    still looks connected, yet /health turns 503 naming the stale candle; the watchdog
    reconnects, the backfill catches up, and /health is 200 again."""
    seen: list[tuple[int, int, list[str]]] = []  # (replay time, HTTP status, problems)
    async with running_service(frame, tmp_path / "l.sqlite", faults=["stall@25"], speed=10.0,
                               exchange={"watchdog_s": 2.0},
                               service={"health_max_age_intervals": 4, "health_margin_s": 0}) as service:
        while not service.task.done():
            status, body = await service.get("/health")
            seen.append((service.market.clock.now_ms(), status, body["problems"]))
            await asyncio.sleep(0.04)
        await service.finished()
    interval_ms = 60_000
    last_close_ms = int(frame["open_time_ms"].iloc[HISTORY + 25])  # candle 24 closed here; 25 was never pushed
    stale = [i for i, (_, status, problems) in enumerate(seen)
             if status == 503 and any("BTCUSDT: newest candle" in p and "closed" in p for p in problems)]
    assert stale, f"/health never reported the stale candle: {seen}"
    first, last = stale[0], stale[-1]
    assert any(status == 200 for _, status, _ in seen[:first])  # healthy before
    assert seen[first][0] > last_close_ms + 4 * interval_ms  # failing only once 4 intervals passed without a candle
    assert "limit 240 s: 4 x 1m + 0 s" in " ".join(seen[first][2])
    assert any(status == 200 for _, status, _ in seen[last + 1:])  # healthy again after the reconnect
    with sqlite3.connect(tmp_path / "l.sqlite") as conn:  # and nothing was lost meanwhile
        assert conn.execute("SELECT count(*) FROM decisions").fetchone()[0] == REPLAYED


async def test_a_locked_ledger_fails_health_until_the_lock_is_released(tmp_path: Path, frame: pd.DataFrame) -> None:
    db = tmp_path / "l.sqlite"
    async with running_service(frame, db, speed=20.0) as service:
        while service.daemon.report is None or service.daemon.report.symbols["BTCUSDT"].decisions < 5:
            await asyncio.sleep(0.02)
        assert (await service.get("/health"))[0] == 200
        other = sqlite3.connect(db, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")  # another process holding the write lock
        try:
            status, body = await service.get("/health")
        finally:
            other.execute("ROLLBACK")
            other.close()
        assert status == 503
        assert any(p.startswith("ledger not writable") and "locked by another writer" in p for p in body["problems"])
        assert body["checks"]["ledger"]["writable"] is False
        for _ in range(100):  # the daemon's own commits waited meanwhile; it catches up, and health with it
            status, body = await service.get("/health")
            if status == 200:
                break
            await asyncio.sleep(0.02)
        assert (status, body["problems"], body["checks"]["ledger"]["writable"]) == (200, [], True)
        await service.finished()


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a Prometheus text exposition, parsed by prometheus-client's own parser."""
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


async def test_metrics_parse_and_match_the_ledger(tmp_path: Path, frame: pd.DataFrame) -> None:
    db = tmp_path / "l.sqlite"
    async with await Ledger.open(db) as ledger:  # the retraining log the metrics read
        for n, (status, seconds) in enumerate((("promoted", 40), ("rejected", 25), ("failed", 3), ("rejected", 31))):
            started_ms = 1_000_000 + n * 3_600_000
            retrain_id = await ledger.registry.start_retrain(started_ms=started_ms)
            await ledger.registry.finish_retrain(retrain_id, status=status, finished_ms=started_ms + seconds * 1000)
        await ledger.registry.start_retrain(started_ms=2_000_000)  # one still running
    async with running_service(frame, db, speed=200.0) as service:
        await service.finished()
        status, text = await service.get("/metrics")
    assert status == 200
    metrics = _samples(text)
    btc = (("symbol", "BTCUSDT"),)
    with sqlite3.connect(db) as conn:
        run_id = conn.execute("SELECT max(run_id) FROM runs").fetchone()[0]
        decisions, strategy = conn.execute("SELECT count(*), max(strategy) FROM decisions WHERE run_id = ?",
                                           (run_id,)).fetchone()
        candles = conn.execute("SELECT count(*) FROM candles").fetchone()[0]
        equity, side, qty = conn.execute("SELECT equity, side, qty FROM positions WHERE symbol = 'BTCUSDT'").fetchone()
        retrains = dict(conn.execute("SELECT status, count(*) FROM retrain_runs GROUP BY status").fetchall())
    assert decisions == REPLAYED
    assert metrics[("shadow_decisions_total", btc)] == decisions
    assert metrics[("shadow_decision_latency_seconds_count", ())] == decisions
    # every candle stored after the REST warm-up went through the engine once
    assert metrics[("shadow_candles_processed_total", btc)] == candles - HISTORY
    assert metrics[("shadow_candles_received_total", ())] + metrics[("shadow_candles_backfilled_total", ())] >= REPLAYED
    assert metrics[("shadow_equity", btc)] == equity
    assert (metrics[("shadow_position_side", btc)], metrics[("shadow_position_qty", btc)]) == (side, qty)
    assert metrics[("shadow_model_info", (("model_version", ""), ("strategy", strategy), ("symbol", "BTCUSDT")))] == 1
    for outcome in ("ok", "failed", "rejected", "promoted"):
        assert metrics[("shadow_retrain_runs_total", (("outcome", outcome),))] == retrains.get(outcome, 0)
    assert metrics[("shadow_retrain_running", ())] == 1
    assert metrics[("shadow_retrain_last_duration_seconds", ())] == 31.0  # the last to finish
    assert metrics[("shadow_stream_connected", ())] == 0  # the daemon has stopped
    assert metrics[("shadow_feed_connections_total", ())] >= 1
    assert ("process_resident_memory_bytes", ()) in metrics


async def test_status_is_the_status_command_document_and_the_api_is_read_only(
        tmp_path: Path, frame: pd.DataFrame) -> None:
    db = tmp_path / "l.sqlite"
    async with running_service(frame.iloc[: HISTORY + 20], db, speed=200.0) as service:
        await service.finished()
        status, served = await service.get("/status")
        health_status, health = await service.get("/health")
        async with service.client.post(service.api.url + "/status") as response:
            post_status = response.status
        index = (await service.get("/api"))[1]  # "/" is the dashboard (tests/bot/web/)
    assert status == 200
    printed = json.loads(CliRunner().invoke(app, ["status", "--json", "--db", str(db)]).stdout)

    def timeless(document: dict) -> dict:  # "now" differs: the replay's clock vs the wall clock
        return {"run": document["run"], "symbols": [{k: v for k, v in s.items() if k != "seconds_since_decision"}
                                                    for s in document["symbols"]]}

    assert timeless(served) == timeless(printed) and served["symbols"]
    assert (health_status, health["status"], health["problems"]) == (503, "stopped", ["stopped: stop requested"])
    assert post_status == 405
    assert {"/health", "/metrics", "/status", "/"} <= set(index["endpoints"])


async def test_health_says_why_while_an_http_403_is_waited_out(tmp_path: Path, frame: pd.DataFrame) -> None:
    """Bybit answers the first REST request with 403 (an IP ban): the daemon sends nothing for
    forbidden_wait_s, /health names the 403 and Bybit's reason meanwhile, then it carries on."""
    seen: list[tuple[int, str, list[str]]] = []
    async with running_service(frame, tmp_path / "l.sqlite", faults=["forbidden:1"], speed=100.0,
                               exchange={"forbidden_wait_s": 1.0}) as service:
        while not service.task.done():
            status, body = await service.get("/health")
            seen.append((status, body["status"], body["problems"]))
            await asyncio.sleep(0.05)
        report = await service.finished()
    waiting = [(status, state, problems) for status, state, problems in seen
               if any("Bybit REST answered HTTP 403 Forbidden (access too frequent)" in p for p in problems)]
    assert waiting and all(status == 503 for status, _, _ in waiting)
    assert waiting[0][1] == "starting" and "at least 10 minutes; nothing is sent until" in " ".join(waiting[0][2])
    assert report.symbols["BTCUSDT"].decisions == REPLAYED  # and then it carried on
    assert service.daemon.rest is not None and service.daemon.rest.stats.forbidden == 1
