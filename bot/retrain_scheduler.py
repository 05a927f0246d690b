"""Retraining inside the daemon: when to retrain, and picking up what gets promoted.

Triggers (``[retrain]``, any combination):

- ``every_candles = N``: after every N new candle closes the daemon decided (several
  symbols closing at the same time count once). Counted by the daemon itself, so it is
  exact in a replay where wall time means nothing; the run trains on candles up to the
  one that triggered it.
- ``interval_minutes`` or ``cron``: wall time, through apscheduler (``IntervalTrigger``,
  ``CronTrigger`` in UTC).
- ``cold_start``: at start-up, when a symbol has no promoted model yet.

A trigger while a retrain is running, or while a live trial judges a candidate
(:mod:`bot.live_trials`), is skipped (logged); the next one comes on schedule.
Each run is :func:`trainer.retrain.runner.run_retrain` in a child process, awaited in a
task of its own: deciding candles never waits for it. With a shared model one run
trains on every symbol; otherwise each symbol gets its own run, one after the other.

With ``[daemon] strategy = "registry"``, the registry's promoted models are applied by
:class:`bot.hotswap.HotSwapper` after each run and ``poll_seconds`` after the previous check
ended (a model promoted by ``shadow models promote`` or ``shadow retrain --now`` in another
process). A check that loads a model (the first one imports torch) can outlast a poll
interval: the next check waits for it, so checks never overlap and nothing warns.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from bot.engine import SymbolEngine
from bot.hotswap import HotSwapper
from bot.live_trials import LiveTrials
from config.accounts import trading_accounts
from config.settings import Settings
from env.types import Candle
from state.clock import SYSTEM_CLOCK, Clock
from state.ledger import Ledger
from state.records import DecisionRecord, ModelStatus, RetrainStatus
from trainer.retrain.job import DEFAULT_TRAINER
from trainer.retrain.runner import RetrainOutcome, close_abandoned_runs, run_retrain

log = logging.getLogger(__name__)


class RetrainScheduler:
    """Owns the triggers, the running retrain task and the hot-swapper.

    Args:
        settings: all settings (``[retrain]`` decides what runs).
        ledger: the daemon's ledger writer (retrain rows and registry rows go through it).
        engines: the daemon's engines by symbol.
        clock: the daemon's clock: every retrain and registry row is stamped with it, so a
            replay writes one timeline.
        scheduler: the apscheduler instance the wall-time triggers and the registry poll go
            to (default: a new ``AsyncIOScheduler`` in UTC); started and shut down here.
    """

    trainer_target: str = DEFAULT_TRAINER
    """``module:function`` training candidates (tests plug fakes in here)."""

    def __init__(self, settings: Settings, ledger: Ledger, engines: Mapping[str, SymbolEngine], *,
                 clock: Clock = SYSTEM_CLOCK, scheduler: AsyncIOScheduler | None = None) -> None:
        self.settings = settings
        self.retrain = settings.retrain
        self.ledger = ledger
        self.engines = engines
        self.clock = clock
        accounts = trading_accounts(settings)
        self.followers = [a.name for a in accounts if a.follows_registry]
        self.swapper = (HotSwapper(engines, self.followers, settings.env.lookback_window,
                                   settings.daemon.torch_threads, settings.exchange.category)
                        if self.followers else None)
        self.trials = LiveTrials(ledger, engines, {a.name: a for a in accounts}, settings.env.lookback_window,
                                 category=settings.exchange.category, clock=clock, on_promoted=self.check_registry)
        self.outcomes: list[RetrainOutcome] = []
        self.run_spans_ns: list[tuple[int, int]] = []
        """``time.perf_counter_ns()`` start and end of each child run (benchmarks)."""
        self._scheduler = scheduler or AsyncIOScheduler(timezone="UTC")
        self._task: asyncio.Task[None] | None = None
        self._poller: asyncio.Task[None] | None = None
        self._abort = asyncio.Event()
        self._counted = 0
        self._last_counted_ms: int | None = None

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def start(self) -> None:
        """Resume the live trials under way, arm the triggers (and the registry poll); a
        cold start asks for a first model."""
        await self.trials.resume()
        retrain = self.retrain
        if retrain.enabled:
            for retrain_id in await close_abandoned_runs(self.ledger, retrain.time_limit_s, self.clock):
                log.warning("retrain %d was left running by a process that stopped; recorded as failed", retrain_id)
            if retrain.interval_minutes is not None:
                self._add(self._triggered, IntervalTrigger(minutes=retrain.interval_minutes),
                          f"every {retrain.interval_minutes:g} minutes")
            if retrain.cron is not None:
                self._add(self._triggered, CronTrigger.from_crontab(retrain.cron, timezone="UTC"),
                          f"cron {retrain.cron}")
            cold = [s for s, e in self.engines.items()
                    if any(e.accounts[a].serving.model_version is None for a in self.followers if a in e.accounts)]
            if retrain.cold_start and self.swapper is not None and cold:
                self.request(f"cold start: no promoted model for {', '.join(cold)}")
        if self.swapper is not None:
            self._poller = asyncio.get_running_loop().create_task(self._poll_registry(), name="registry-poll")
        self._scheduler.start()

    def _add(self, job: object, trigger: object, *args: str) -> None:
        self._scheduler.add_job(job, trigger, args=args, coalesce=True, max_instances=1, misfire_grace_time=None)

    async def stop(self) -> None:
        """Stop the triggers and the registry poll; a running retrain is aborted (its child
        killed, the run recorded as failed) and awaited, so nothing is left half-written."""
        self._scheduler.shutdown(wait=False)
        self._abort.set()
        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poller
        if self._task is not None:
            await self._task

    def on_decided(self, candle: Candle) -> None:
        """Count a decided candle close for ``every_candles`` (called by the daemon)."""
        every = self.retrain.every_candles
        if not self.retrain.enabled or every is None:
            return
        if self._last_counted_ms is not None and candle.open_time_ms <= self._last_counted_ms:
            return  # another symbol's candle of the same close
        self._last_counted_ms = candle.open_time_ms
        self._counted += 1
        if self._counted >= every:
            self._counted = 0
            self.request(f"{every} new candles", end_ms=candle.open_time_ms)

    async def on_committed(self, symbol: str, records: list[DecisionRecord]) -> None:
        """Told of the decisions just committed at one candle of ``symbol`` (called by the
        daemon): a live trial counts its challenger's."""
        await self.trials.on_committed(symbol, records)

    async def _triggered(self, why: str) -> None:
        self.request(why)

    def request(self, why: str, *, end_ms: int | None = None) -> bool:
        """Start a retrain now unless one is running; returns whether it started."""
        if self.running:
            log.info("retrain trigger (%s) skipped: a retrain is still running", why)
            return False
        if self.trials.active:
            log.info("retrain trigger (%s) skipped: a live trial is running", why)
            return False
        log.info("retrain triggered: %s", why)
        self._task = asyncio.get_running_loop().create_task(self._run(end_ms), name="retrain")
        return True

    async def _run(self, end_ms: int | None) -> None:
        symbols = list(self.engines)
        groups = [symbols] if self.retrain.shared_model else [[s] for s in symbols]
        for group in groups:
            if self._abort.is_set():
                return
            started = time.perf_counter_ns()
            outcome = await run_retrain(self.ledger, self.settings, group, end_ms=end_ms,
                                        trainer_target=self.trainer_target, abort=self._abort, clock=self.clock)
            self.run_spans_ns.append((started, time.perf_counter_ns()))
            self.outcomes.append(outcome)
            if outcome.promoted:
                await self.check_registry()
            elif outcome.status == RetrainStatus.TRIAL:
                await self.trials.start_pending()

    async def _poll_registry(self) -> None:
        """Check the registry ``poll_seconds`` after the previous check ended, until stopped."""
        while True:
            await asyncio.sleep(self.retrain.poll_seconds)
            await self.check_registry()

    async def check_registry(self) -> None:
        """Apply the registry's promoted models to the engines, and start the live trials
        opened meanwhile (``shadow retrain --now`` in another process); never raises."""
        if self.swapper is None:
            return
        try:
            await self.swapper.apply(await self.ledger.registry.list_models(ModelStatus.PROMOTED))
            await self.trials.start_pending()
        except Exception:  # a registry read failing now is retried at the next poll
            log.exception("checking the model registry failed; trying again in %g s", self.retrain.poll_seconds)
