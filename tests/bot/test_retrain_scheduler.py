"""The daemon's retrain triggers and hot-swap, without child processes: ``run_retrain`` is
replaced by a recorder, the engines and the registry rows are real."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import pytest
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from bot import retrain_scheduler
from bot.engine import ServingStrategy, SymbolEngine
from bot.hotswap import HotSwapper
from bot.retrain_scheduler import RetrainScheduler
from bot.serving import configured_strategy
from config.accounts import DEFAULT_ACCOUNT
from config.settings import DaemonSettings, EnvSettings, FeedSettings, RetrainSettings, RiskSettings, Settings
from env.types import Candle
from state.clock import Clock
from state.ledger import Ledger
from tests.bot.engines import one_account_engine
from trainer.models.store import publish_model
from trainer.retrain.runner import RetrainOutcome

SYMBOLS = ["BTCUSDT", "ETHUSDT"]


def engines(lookback: int = 20) -> dict[str, SymbolEngine]:
    flat = configured_strategy("flat", lookback)
    return {s: one_account_engine(s, EnvSettings(lookback_window=lookback), RiskSettings(), flat) for s in SYMBOLS}


def candle(symbol: str, minute: int) -> Candle:
    return Candle(symbol, "1m", minute * 60_000, 1.0, 1.0, 1.0, 1.0, 1.0)


class Recorder:
    """Stands in for ``run_retrain``: records each call, waits for ``release`` (or ``abort``)."""

    def __init__(self, status: str = "rejected") -> None:
        self.calls: list[tuple[tuple[str, ...], int | None]] = []
        self.release = asyncio.Event()
        self.release.set()
        self.status = status

    async def __call__(self, ledger: Ledger, settings: Settings, symbols: list[str], *, end_ms: int | None,
                       trainer_target: str, abort: asyncio.Event, clock: Clock) -> RetrainOutcome:
        self.calls.append((tuple(symbols), end_ms))
        waits = [asyncio.ensure_future(self.release.wait()), asyncio.ensure_future(abort.wait())]
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        for wait in waits:
            wait.cancel()
        return RetrainOutcome(len(self.calls), "failed" if abort.is_set() else self.status, "recorded",
                              tuple(symbols))


@pytest.fixture
def recorder(monkeypatch: pytest.MonkeyPatch) -> Recorder:
    rec = Recorder()
    monkeypatch.setattr(retrain_scheduler, "run_retrain", rec)
    return rec


def scheduler(ledger: Ledger, *, strategy: str = "registry", aps: AsyncIOScheduler | None = None,
              **retrain: object) -> RetrainScheduler:
    settings = Settings(feed=FeedSettings(symbols=SYMBOLS), daemon=DaemonSettings(strategy=strategy),
                        retrain=RetrainSettings(**{"enabled": True, "cold_start": False} | retrain))
    return RetrainScheduler(settings, ledger, engines(), scheduler=aps)


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_every_n_candle_closes_trigger_one_run_per_symbol_up_to_the_trigger_candle(
        tmp_path: Path, recorder: Recorder) -> None:
    async with await Ledger.open(tmp_path / "l.sqlite") as ledger:
        sched = scheduler(ledger, every_candles=3)
        await sched.start()
        for minute in range(1, 7):
            for symbol in SYMBOLS:  # both symbols close together: one count
                sched.on_decided(candle(symbol, minute))
            await settle()
        await sched.stop()
    assert recorder.calls == [(("BTCUSDT",), 180_000), (("ETHUSDT",), 180_000),
                              (("BTCUSDT",), 360_000), (("ETHUSDT",), 360_000)]


async def test_a_shared_model_is_one_run_over_every_symbol(tmp_path: Path, recorder: Recorder) -> None:
    async with await Ledger.open(tmp_path / "l.sqlite") as ledger:
        sched = scheduler(ledger, every_candles=1, shared_model=True)
        await sched.start()
        sched.on_decided(candle("BTCUSDT", 1))
        await settle()
        await sched.stop()
    assert recorder.calls == [(("BTCUSDT", "ETHUSDT"), 60_000)]


async def test_a_trigger_while_a_retrain_runs_is_skipped_and_stop_aborts_the_run(
        tmp_path: Path, recorder: Recorder, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("INFO")
    recorder.release.clear()
    async with await Ledger.open(tmp_path / "l.sqlite") as ledger:
        sched = scheduler(ledger, every_candles=1)
        await sched.start()
        sched.on_decided(candle("BTCUSDT", 1))
        await settle()
        assert sched.running and not sched.request("by hand")
        await sched.stop()
        assert not sched.running
    assert recorder.calls == [(("BTCUSDT",), 60_000)]  # aborted: ETHUSDT's run never started
    assert [o.status for o in sched.outcomes] == ["failed"]
    assert "retrain trigger (by hand) skipped: a retrain is still running" in caplog.text


async def test_wall_time_triggers_come_from_apscheduler(tmp_path: Path, recorder: Recorder) -> None:
    """Driven through apscheduler's own API: the jobs it holds, their next fire times, and a
    job told to run now (no waiting for wall time)."""
    midnight = datetime(2024, 3, 1, tzinfo=UTC)
    async with await Ledger.open(tmp_path / "l.sqlite") as ledger:
        aps = AsyncIOScheduler(timezone="UTC")
        sched = scheduler(ledger, aps=aps, interval_minutes=90, poll_seconds=3600)
        await sched.start()
        (interval_job,) = [job for job in aps.get_jobs() if job.args]  # the poll job has no reason argument
        assert interval_job.trigger.interval.total_seconds() == 90 * 60
        assert recorder.calls == []
        interval_job.modify(next_run_time=datetime.now(UTC))
        for _ in range(100):
            if recorder.calls:
                break
            await asyncio.sleep(0.01)
        await sched.stop()
        assert recorder.calls[0] == (("BTCUSDT",), None)  # a wall-time run trains on everything stored

        aps = AsyncIOScheduler(timezone="UTC")
        cron = scheduler(ledger, aps=aps, cron="0 */6 * * *")
        await cron.start()
        (cron_job,) = [job for job in aps.get_jobs() if job.args]
        fires = [cron_job.trigger.get_next_fire_time(None, midnight.replace(hour=h, minute=1)) for h in (0, 5, 23)]
        await cron.stop()
    assert [f.isoformat() for f in fires] == ["2024-03-01T06:00:00+00:00", "2024-03-01T06:00:00+00:00",
                                              "2024-03-02T00:00:00+00:00"]
    assert cron_job.args == ("cron 0 */6 * * *",)


async def test_cold_start_asks_for_a_first_model_only_when_one_is_missing(tmp_path: Path, recorder: Recorder) -> None:
    async with await Ledger.open(tmp_path / "l.sqlite") as ledger:
        sched = scheduler(ledger, cold_start=True)
        await sched.start()
        await settle()
        await sched.stop()
        assert len(recorder.calls) == 2  # both symbols trade the fallback
        recorder.calls.clear()
        disabled = scheduler(ledger, cold_start=True, enabled=False)
        await disabled.start()
        await settle()
        await disabled.stop()
    assert recorder.calls == []


async def test_a_promotion_by_the_retrain_is_served_at_once(tmp_path: Path, ppo_model: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(retrain_scheduler, "run_retrain", Recorder(status="promoted"))
    async with await Ledger.open(tmp_path / "l.sqlite") as ledger:
        sched = scheduler(ledger, poll_seconds=3600)
        await publish_model(ledger, tmp_path / "registry", ppo_model, symbol="BTCUSDT", interval="1m",
                            status="promoted")
        await sched.start()
        assert sched.request("by hand")
        await sched._task
        await sched.stop()
    assert sched.engines["BTCUSDT"].accounts[DEFAULT_ACCOUNT].serving.model_version == "v0001"
    assert sched.engines["ETHUSDT"].accounts[DEFAULT_ACCOUNT].serving.label == "flat"  # its own model, or none
    assert [(e.symbol, e.previous, e.version) for e in sched.swapper.swaps] == [("BTCUSDT", "flat", "v0001")]


async def test_hotswap_loads_a_shared_model_once_prefers_per_symbol_ones_and_refuses_mismatches(
        tmp_path: Path, ppo_model: Path, caplog: pytest.LogCaptureFixture) -> None:
    async with await Ledger.open(tmp_path / "l.sqlite") as ledger:
        shared = await publish_model(ledger, tmp_path / "registry", ppo_model, symbol=None, interval="1m",
                                     status="promoted")
        running = engines()
        swapper = HotSwapper(running, [DEFAULT_ACCOUNT], 20, 1)
        events = await swapper.apply(await ledger.registry.list_models("promoted"))
        assert [(e.symbol, e.version) for e in events] == [("BTCUSDT", "v0001"), ("ETHUSDT", "v0001")]
        btc, eth = (running[s].accounts[DEFAULT_ACCOUNT] for s in ("BTCUSDT", "ETHUSDT"))
        assert btc.serving is eth.serving  # loaded once, served twice
        await publish_model(ledger, tmp_path / "registry", ppo_model, symbol="ETHUSDT", interval="1m",
                            status="promoted")
        events = await swapper.apply(await ledger.registry.list_models("promoted"))
        assert [(e.symbol, e.previous, e.version) for e in events] == [("ETHUSDT", "v0001", "v0002")]
        assert await swapper.apply(await ledger.registry.list_models("promoted")) == []  # nothing new

        longer = engines(lookback=30)
        wrong_lookback = HotSwapper(longer, [DEFAULT_ACCOUNT], 30, 1)
        assert await wrong_lookback.apply([shared]) == []
        assert await wrong_lookback.apply([shared]) == []  # refused once, not retried every poll
    assert longer["BTCUSDT"].accounts[DEFAULT_ACCOUNT].serving.label == "flat"
    assert caplog.text.count("refusing promoted model v0001") == 1
    assert "trained with lookback_window=20, configured 30; still serving flat" in caplog.text


def test_serving_labels_are_kept_for_baselines() -> None:
    serving = configured_strategy("flat", 20)
    assert serving == ServingStrategy(serving.strategy, "flat", None)


async def test_concurrent_registry_checks_load_and_swap_once(tmp_path: Path, ppo_model: Path) -> None:
    """The poll and a finished retrain can ask at the same moment: one load, one swap."""
    async with await Ledger.open(tmp_path / "l.sqlite") as ledger:
        await publish_model(ledger, tmp_path / "registry", ppo_model, symbol="BTCUSDT", interval="1m",
                            status="promoted")
        swapper = HotSwapper(engines(), [DEFAULT_ACCOUNT], 20, 1)
        promoted = await ledger.registry.list_models("promoted")
        results = await asyncio.gather(swapper.apply(promoted), swapper.apply(promoted))
    assert sorted(len(r) for r in results) == [0, 1]
    assert [(e.symbol, e.version) for e in swapper.swaps] == [("BTCUSDT", "v0001")]


async def test_a_slow_model_load_delays_the_registry_poll_without_apscheduler_warnings(
        tmp_path: Path, ppo_model: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """The first model load (importing torch, unpickling) can take longer than a poll
    interval. Checks never overlap and nothing warns: a model load is not an operator problem."""
    from bot import hotswap

    loads: list[str] = []
    real_load = hotswap.load_registry_model

    def slow_load(entry: object, lookback_window: int, **market: str | None) -> ServingStrategy:
        loads.append(entry.version)  # type: ignore[attr-defined]
        import time

        time.sleep(0.6)  # twelve poll intervals
        return real_load(entry, lookback_window, **market)  # type: ignore[arg-type]

    monkeypatch.setattr(hotswap, "load_registry_model", slow_load)
    caplog.set_level("INFO")
    async with await Ledger.open(tmp_path / "l.sqlite") as ledger:
        sched = scheduler(ledger, poll_seconds=0.05)
        await sched.start()
        await publish_model(ledger, tmp_path / "registry", ppo_model, symbol="BTCUSDT", interval="1m",
                            status="promoted")
        for _ in range(200):
            await asyncio.sleep(0.01)
        await sched.stop()
    assert loads == ["v0001"]
    assert sched.engines["BTCUSDT"].accounts[DEFAULT_ACCOUNT].serving.model_version == "v0001"
    noisy = [r for r in caplog.records if r.levelname in ("WARNING", "ERROR")]
    assert noisy == [], [r.getMessage() for r in noisy]
