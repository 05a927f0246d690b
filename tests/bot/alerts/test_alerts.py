"""Alerts from a daemon replaying real candles, delivered by apprise to a local HTTP
receiver (``json://127.0.0.1``): promotion, rollback, rejection, retrain failure, a real
risk stop, stale candles and their recovery, the daemon stopping; a receiver that hangs
does not slow a decision down."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from aiohttp import web

from bot.alerts.watch import AlertService
from bot.daemon import STOP_REQUESTED
from config.settings import AlertSettings
from state.ledger import Ledger
from state.records import ModelEntry
from tests.bot.service_harness import HISTORY, RunningService, running_service


@dataclass
class Receiver:
    """A webhook on 127.0.0.1 that keeps every JSON body apprise posts."""

    url: str
    bodies: list[dict] = field(default_factory=list)
    delay_s: float = 0.0

    def titles(self) -> list[str]:
        return [b["title"] for b in self.bodies]

    async def wait_for(self, text: str, timeout_s: float = 10.0) -> dict:
        for _ in range(int(timeout_s / 0.05)):
            found = [b for b in self.bodies if text in b["title"]]
            if found:
                return found[0]
            await asyncio.sleep(0.05)
        raise AssertionError(f"no alert {text!r} in {self.titles()}")


@asynccontextmanager
async def receiver(delay_s: float = 0.0) -> AsyncIterator[Receiver]:
    got = Receiver("", delay_s=delay_s)

    async def take(request: web.Request) -> web.Response:
        await asyncio.sleep(got.delay_s)
        got.bodies.append(await request.json())
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/alerts", take)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    got.url = f"json://127.0.0.1:{runner.addresses[0][1]}/alerts"
    try:
        yield got
    finally:
        await runner.cleanup()


def _alerts(service: RunningService, hook: Receiver, **settings: object) -> AlertService:
    alerts = AlertSettings(**({"urls": [hook.url], "min_interval_s": 0, "health_after_s": 0, "check_seconds": 0.1}
                              | settings))
    return AlertService(service.daemon, service.daemon.settings.model_copy(update={"alerts": alerts}))


async def _until_watched(service: RunningService) -> None:
    """The ledger exists and the alerts' watch has taken its first look."""
    while service.daemon.report is None or service.daemon.report.symbols["BTCUSDT"].decisions < 2:
        await asyncio.sleep(0.05)
    await asyncio.sleep(1.2)


async def test_registry_events_a_real_risk_stop_and_the_stop_alert(tmp_path: Path, btc_candles: pd.DataFrame) -> None:
    frame = btc_candles.iloc[: HISTORY + 120].reset_index(drop=True)
    db = tmp_path / "l.sqlite"
    async with receiver() as hook, running_service(frame, db, speed=20.0, risk={"max_drawdown": 0.002}) as service:
        async with _alerts(service, hook) as alerts:
            await _until_watched(service)
            async with await Ledger.open(db) as other:  # `shadow models promote` and a retrain, in another writer
                registry = other.registry
                for version, created in (("ppo-0001", 1), ("ppo-0002", 2)):
                    await registry.add_model(ModelEntry(version, f"{version}.zip", "a" * 64, created,
                                                        symbol="BTCUSDT", interval="1m"))
                await registry.set_model_status("ppo-0001", "promoted", at_ms=10)
                await registry.set_model_status("ppo-0002", "promoted", at_ms=20)
                await registry.set_model_status("ppo-0001", "promoted", at_ms=30)
                rejected = await registry.start_retrain(started_ms=40)
                await registry.finish_retrain(rejected, status="rejected", finished_ms=50,
                                              reason="candidate ppo-0003 did not beat the incumbent")
                failed = await registry.start_retrain(started_ms=60)
                await registry.finish_retrain(failed, status="failed", finished_ms=70, reason="out of memory")
            assert (await hook.wait_for("model ppo-0002 promoted"))["type"] == "info"
            rollback = await hook.wait_for("rolled back to model ppo-0001")
            assert rollback["message"] == "ppo-0001 now serves BTCUSDT (replacing ppo-0002)"
            assert rollback["type"] == "warning"
            assert "did not beat" in (await hook.wait_for(f"retrain {rejected}: candidate rejected"))["message"]
            assert (await hook.wait_for(f"retrain {failed} failed"))["message"] == "out of memory"
            risk = await hook.wait_for("risk stop: max_drawdown on BTCUSDT", timeout_s=20)
            assert "drawdown" in risk["message"]
            report = await service.finished()
            alerts.stopping(report.stop_reason, requested=report.stop_reason == STOP_REQUESTED)
        stopped = await hook.wait_for("Shadow stopped: stop requested")
        assert stopped["type"] == "info"
    with sqlite3.connect(db) as conn:  # the risk stop the alert told of is the ledger's
        assert conn.execute("SELECT count(*) FROM risk_events WHERE kind = 'max_drawdown'").fetchone()[0] >= 1


async def test_stale_candles_alert_once_and_their_recovery_too(tmp_path: Path, btc_candles: pd.DataFrame) -> None:
    frame = btc_candles.iloc[: HISTORY + 60].reset_index(drop=True)
    async with receiver() as hook, running_service(
            frame, tmp_path / "l.sqlite", faults=["stall@20"], speed=10.0, exchange={"watchdog_s": 2.0},
            service={"health_max_age_intervals": 4, "health_margin_s": 0}) as service, \
            _alerts(service, hook, min_interval_s=300):
        stale = await hook.wait_for("BTCUSDT: newest candle", timeout_s=20)
        assert stale["type"] == "warning" and "limit 240 s" in stale["message"]
        recovered = await hook.wait_for("BTCUSDT recovered", timeout_s=20)
        assert recovered["message"].startswith("Cleared: BTCUSDT: newest candle")
        await service.finished()
    assert sum("newest candle" in t for t in hook.titles()) == 1  # alerted once, not at every check


async def test_a_receiver_that_hangs_never_slows_a_decision(tmp_path: Path, btc_candles: pd.DataFrame) -> None:
    frame = btc_candles.iloc[: HISTORY + 100].reset_index(drop=True)
    db = tmp_path / "l.sqlite"
    async with receiver(delay_s=3.0) as hook, running_service(frame, db, speed=25.0) as service, \
            _alerts(service, hook, stop_timeout_s=0.5) as alerts:
        await _until_watched(service)
        async with await Ledger.open(db) as other:  # ten promotions while the daemon decides
            for i in range(10):
                await other.registry.add_model(ModelEntry(f"v{i}", f"v{i}.zip", "a" * 64, i, symbol="BTCUSDT",
                                                          interval="1m", status="promoted", promoted_ms=i))
        while alerts.notifier is not None and alerts.notifier.stats.queued < 10:
            await asyncio.sleep(0.05)
        report = await service.finished()
        assert alerts.notifier is not None and alerts.notifier.stats.sent <= 1  # the channel is stuck
    latencies = sorted(report.latencies_ms)
    assert report.symbols["BTCUSDT"].decisions == 100 and latencies[-1] < 250, latencies[-5:]
