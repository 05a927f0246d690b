"""``shadow run``: the long-lived paper-trading service.

Start-up, per configured symbol: load every stored candle from the ledger (or, on a first
start, fetch ``[daemon] warmup_candles`` over REST and store them), warm the engine with
them, and give it every paper account that trades the symbol (:mod:`config.accounts`),
each restored with its risk guard from its last decision in the ledger and trading the
strategy it is configured with (:mod:`bot.serving`). A linear perpetual also reads its
funding interval and the funding history it lacks since its stored candles (stopping,
before the ledger is opened, with one clear line when the exchange cannot give it). Then
one websocket feed (:class:`bot.bybit.feed.CandleFeed`) hands each symbol's closed
candles, gap-free and in order, to that symbol's task, which finds the funding settled
inside the candle (:class:`bot.bybit.funding.FundingFeed`, stored beside the candles),
runs the engine (features once, then every account, each settling its own funding) and
writes all the accounts' decisions at the candle in one ledger transaction.

An account the ledger holds but the configuration no longer lists is kept as it is
(readable by every review command) and not traded; the start-up log says so.

Shutdown (SIGTERM/SIGINT, or the ``stop`` event): candles being decided are finished and
committed, nothing new is started, the session is closed in ``runs``. A restart resumes
after the last decided candle; the feed backfills what was missed over REST.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections import deque
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass, field
from importlib import metadata as importlib_metadata

from bot.bybit.feed import CandleFeed
from bot.bybit.funding import HISTORY, FundingFeed
from bot.bybit.markets import interval as parse_interval
from bot.bybit.rest import BybitRest, RestError
from bot.bybit.sequencer import FeedCandle
from bot.engine import ServingStrategy, SymbolEngine
from bot.retrain_scheduler import RetrainScheduler
from bot.serving import account_strategy, cap_torch_threads, configured_strategy, pinned_model
from config.accounts import CHALLENGER_PREFIX, REGISTRY, TradingAccount, registry_version, trading_accounts
from config.errors import UserError
from config.settings import Settings
from env.candles import format_ms
from env.features import WARMUP_CANDLES, warmup_prefix
from env.funding import FundingRate, due_between
from env.types import Candle
from state.clock import Clock, SystemClock
from state.database import check_for_writing, connect_reader
from state.errors import LedgerError, SchemaVersionError
from state.ledger import Ledger
from state.readers import list_models
from state.records import DecisionRecord, FeedProblem, ModelEntry, ResumePoint
from strategies.base import UnknownStrategyError
from trainer.data.funding_history import FUNDING_PAGE, Settlement

log = logging.getLogger(__name__)

WARMUP_CONCURRENCY = 32
"""Symbols prepared at once at start-up: enough to keep the paced REST requests back to back
while other symbols' features warm up, few enough to keep memory and the ledger queue small."""

LATENCY_SAMPLES = 10_000
"""Arrival-to-commit latencies kept for the heartbeat and benchmarks (the newest)."""

STOP_REQUESTED = "stop requested"
"""``DaemonReport.stop_reason`` of a stop asked for (signal or ``stop`` event); any other is a failure."""

DecisionListener = Callable[[str, FeedCandle, float], None]
"""Told of every decided candle after its commit (every account's decision at it): symbol,
the candle, arrival-to-commit ms."""


class LedgerMismatchError(UserError):
    """The ledger's account was opened with other settings than the configured ones."""


class FundingUnavailableError(UserError):
    """A perpetual whose funding history the exchange cannot give: it is not traded without it."""


@dataclass
class SymbolStats:
    """What one symbol's task has done this session: candles decided (by at least one
    account), decisions written per account, warm-up candles, candles every account had
    decided already (a replay), and the error that stopped it."""

    decisions: int = 0
    warmup_candles: int = 0
    skipped_replays: int = 0
    failed: str | None = None
    by_account: dict[str, int] = field(default_factory=dict)
    funding_paid: dict[str, float] = field(default_factory=dict)
    """Per account, funding payments recorded this session (amounts > 0)."""
    funding_received: dict[str, float] = field(default_factory=dict)
    """Per account, funding receipts recorded this session (-amounts < 0)."""


@dataclass
class DaemonReport:
    """A session's summary (also logged at every heartbeat)."""

    run_id: int
    symbols: dict[str, SymbolStats] = field(default_factory=dict)
    latencies_ms: deque[float] = field(default_factory=lambda: deque(maxlen=LATENCY_SAMPLES))
    stop_reason: str = "running"


class Daemon:
    """The service. ``await Daemon(settings).run(stop)`` until ``stop`` is set.

    Args:
        settings: all of Shadow's settings (``[feed]``, ``[daemon]``, ``[env]``, ``[risk]``,
            ``[ledger]``, ``[exchange]``).
        clock: wall time for ``decided_ms`` and the session rows (a replay may inject its own).
    """

    def __init__(self, settings: Settings, *, clock: Clock | None = None) -> None:
        needed = warmup_prefix(settings.env.lookback_window)
        if settings.daemon.warmup_candles < needed:
            raise UserError(
                f"invalid value for daemon.warmup_candles: {settings.daemon.warmup_candles}: needs at least "
                f"{needed} ({WARMUP_CANDLES} feature warm-up + lookback_window {settings.env.lookback_window} - 1)"
            )
        self.settings = settings
        self.accounts = trading_accounts(settings)
        _check_live_trials(settings, self.accounts)
        self.clock = clock or SystemClock()
        self.interval = parse_interval(settings.feed.interval)
        self.engines: dict[str, SymbolEngine] = {}
        self.report: DaemonReport | None = None
        self.retrainer: RetrainScheduler | None = None  # retraining and hot-swap (bot/retrain_scheduler.py)
        self._ledger: Ledger | None = None
        self._in_flight: set[asyncio.Future[None]] = set()
        self.listeners: list[DecisionListener] = []  # called after each committed decision (metrics, demo, tests)
        self.feed: CandleFeed | None = None  # while running: read-only access for health and metrics
        self.rest: BybitRest | None = None
        self.funding: FundingFeed | None = None  # a perpetual's funding (category linear)
        self._latest_funding: dict[str, list[Settlement]] = {}  # read before the ledger opens
        self._funding_warned: set[str] = set()  # models that said they trained without funding (once each)

    async def run(self, stop: asyncio.Event | None = None) -> DaemonReport:
        """Serve until ``stop`` is set (or every symbol's feed has failed); returns the report."""
        stop = stop or asyncio.Event()
        settings = self.settings
        symbols = settings.feed.symbols
        self.check_inputs()
        async with BybitRest(settings.exchange, clock=self.clock) as rest:
            self.rest = rest  # before the first request: /health shows a 403 met during the start-up
            await rest.resolve(symbols)
            if settings.exchange.category == "linear":
                self.funding = FundingFeed(rest, settings.exchange)
                await self._check_funding(rest)
            async with await Ledger.from_settings(settings.ledger) as ledger:
                self._ledger = ledger
                return await self._serve(ledger, rest, stop)

    def check_inputs(self) -> None:
        """Refuse, before anything is fetched or written, what cannot work: a strategy spec
        that does not build (a missing model file, an unknown name, a model this market cannot
        trade as it was trained: :func:`bot.serving.configured_strategy`) and a ledger file the
        writer could not use (not a ledger, a newer schema, no place to create it).
        Registry versions are checked against the registry when the ledger is open.

        Raises:
            UserError: the first problem found, naming the account.
        """
        daemon = self.settings.daemon
        lookback = self.settings.env.lookback_window
        category, interval = self.settings.exchange.category, self.settings.feed.interval
        if any(a.follows_registry for a in self.accounts):
            configured_strategy(daemon.fallback, lookback, category=category, interval=interval)
        for account in self.accounts:
            if account.strategy != REGISTRY and registry_version(account.strategy) is None:
                try:
                    configured_strategy(account.strategy, lookback, category=category, interval=interval)
                except UnknownStrategyError as exc:  # an account may also follow the registry
                    raise UserError(f"account {account.name!r}: {exc}, or {REGISTRY} (the promoted model) or "
                                    f"{REGISTRY}:VERSION") from None
                except UserError as exc:
                    raise UserError(f"account {account.name!r}: {exc}") from None
        ledger = self.settings.ledger
        check_for_writing(ledger.db_path, ledger.lock_timeout_s)
        self._check_pinned_versions()

    def _check_pinned_versions(self) -> None:
        """Accounts pinned to a registry version (``registry:v0003``) name a model the ledger's
        registry holds (a ledger of an older schema is checked once it is migrated, at start)."""
        pinned = [(a.name, v) for a in self.accounts if (v := registry_version(a.strategy)) is not None]
        path = self.settings.ledger.db_path
        if not pinned:
            return
        models: list[ModelEntry] = []
        if path.is_file():
            try:
                with closing(connect_reader(path, self.settings.ledger.lock_timeout_s)) as conn:
                    models = list_models(conn)
            except SchemaVersionError:
                return
        for name, version in pinned:
            pinned_model(version, models, name)

    async def _serve(self, ledger: Ledger, rest: BybitRest, stop: asyncio.Event) -> DaemonReport:
        """Start every symbol's engine, then decide candles until ``stop`` (see the module docstring)."""
        settings = self.settings
        symbols = settings.feed.symbols
        resume = await ledger.resume_points()
        models = await ledger.registry.list_models()
        servings = self._servings(models)  # every strategy built before anything is stored
        self._report_unconfigured(resume)
        self.engines = await self._prepare_all(ledger, rest, resume, servings)
        cap_torch_threads(settings.daemon.torch_threads)
        run_id = await ledger.journal.start_run(started_ms=self.clock.now_ms(), config_hash=config_hash(settings),
                                                code_version=_code_version(), symbols=symbols,
                                                settings=settings.model_dump_json())
        report = self.report = DaemonReport(run_id, {s: SymbolStats() for s in symbols})
        log.info("run %d: serving %s (%s) into %s; accounts %s", run_id, ", ".join(symbols), self.interval.name,
                 ledger.path, ", ".join(a.name for a in self.accounts))
        self.retrainer = RetrainScheduler(settings, ledger, self.engines, clock=self.clock)
        await self.retrainer.start()
        resume_after = {s: e.last_open_ms for s, e in self.engines.items() if e.last_open_ms is not None}
        async with CandleFeed(settings.exchange, settings.feed, rest, resume_after=resume_after,
                              clock=self.clock, on_problem=self._record_feed_problem, funding=self.funding) as feed:
            self.feed = feed
            consumers = [asyncio.create_task(self._consume(symbol, feed), name=f"consume-{symbol}")
                         for symbol in symbols]
            heartbeat = asyncio.create_task(self._heartbeat(feed), name="heartbeat")
            stopper = asyncio.create_task(stop.wait(), name="stop")
            pending: set[asyncio.Task[object]] = {*consumers, stopper}
            while stopper in pending and any(c in pending for c in consumers):
                _, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            report.stop_reason = STOP_REQUESTED if stop.is_set() else "every symbol's feed stopped"
            for task in (*consumers, heartbeat, stopper):
                task.cancel()
            await asyncio.gather(*consumers, heartbeat, stopper, return_exceptions=True)
            await asyncio.gather(*self._in_flight, return_exceptions=True)  # finish decisions under way
            await self.retrainer.stop()
            log.info("run %d: stopping (%s); %s", run_id, report.stop_reason, self.status_line(feed))
        await ledger.journal.stop_run(run_id, stopped_ms=self.clock.now_ms(), reason=report.stop_reason)
        return report

    # ------------------------------------------------------------------ start-up
    def _servings(self, models: list[ModelEntry]) -> dict[tuple[str, str], ServingStrategy]:
        """The strategy of every account on every symbol it trades (a model is loaded once)."""
        settings = self.settings
        loaded: dict[tuple[str, str | None], ServingStrategy] = {}
        servings = {}
        for account in self.accounts:
            for symbol in account.symbols:
                serving = account_strategy(account.strategy, settings.daemon.fallback, models, symbol,
                                           self.interval.name, settings.env.lookback_window, account=account.name,
                                           category=settings.exchange.category)
                key = (serving.label, serving.model_version)
                servings[account.name, symbol] = loaded.setdefault(key, serving) if serving.model_version else serving
        return servings

    def _report_unconfigured(self, resume: dict[tuple[str, str], ResumePoint]) -> None:
        """Say which accounts of the ledger this configuration does not trade (they stay readable)."""
        configured = {(a.name, s) for a in self.accounts for s in a.symbols}
        idle: dict[str, list[str]] = {}
        for name, symbol in sorted(resume):
            if (name, symbol) not in configured and not name.startswith(CHALLENGER_PREFIX):
                idle.setdefault(name, []).append(symbol)
        for name, held in idle.items():
            log.warning("account %s holds %s history in the ledger but is not configured for %s: kept as it is "
                        "(shadow accounts, status and trades still show it), not traded", name, ", ".join(held),
                        "them" if len(held) > 1 else "it")

    async def _prepare_all(self, ledger: Ledger, rest: BybitRest, resume: dict[tuple[str, str], ResumePoint],
                           servings: dict[tuple[str, str], ServingStrategy]) -> dict[str, SymbolEngine]:
        """Every symbol's engine, :data:`WARMUP_CONCURRENCY` at a time: one symbol's REST
        round trip overlaps another's feature warm-up (serially, 1,000 symbols took minutes).
        The first failure cancels the rest and is raised."""
        limit = asyncio.Semaphore(WARMUP_CONCURRENCY)

        async def prepare(symbol: str) -> SymbolEngine:
            async with limit:
                return await self._prepare(symbol, ledger, rest, resume, servings)

        symbols = self.settings.feed.symbols
        tasks = [asyncio.create_task(prepare(symbol), name=f"prepare-{symbol}") for symbol in symbols]
        try:
            engines = await asyncio.gather(*tasks)
        except BaseException:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise
        return dict(zip(symbols, engines, strict=True))

    async def _prepare(self, symbol: str, ledger: Ledger, rest: BybitRest,
                       resume: dict[tuple[str, str], ResumePoint],
                       servings: dict[tuple[str, str], ServingStrategy]) -> SymbolEngine:
        settings = self.settings
        iv = self.interval
        engine = SymbolEngine(symbol, iv.name, settings.env.lookback_window, perpetual=self.funding is not None,
                              funding_warned=self._funding_warned)
        for account in self.accounts:
            if symbol in account.symbols:
                engine.add_account(account.name, account.env, account.risk, servings[account.name, symbol])
        history = await ledger.load_candles(symbol, iv.name)
        fetched = await rest.fetch_recent(symbol, iv, settings.daemon.warmup_candles) if history.empty else []
        if self.funding is not None:
            first = (int(history["open_time_ms"].iloc[0]) if not history.empty
                     else fetched[0].open_time_ms if fetched else None)
            await self._start_funding(symbol, ledger, rest, self.funding, first)
        if fetched:
            await ledger.store_candles(fetched)
            history = await ledger.load_candles(symbol, iv.name)
            log.info("%s: first start: %d warm-up candle(s) fetched over REST", symbol, len(fetched))
        engine.warm(history)
        for account in self.accounts:
            point = resume.get((account.name, symbol))
            if point is not None and symbol in account.symbols:
                self._check_resume(ledger, account, point)
                engine.accounts[account.name].restore(point.state, point.risk)
        accounts = "; ".join(f"{a.name}: {_serving_label(a.serving)}, equity {a.portfolio.equity:.8g}"
                             for a in engine.accounts.values())
        log.info("%s: %d stored candle(s) up to %s; %s", symbol, len(history), _fmt_ms(engine.last_open_ms),
                 accounts or "no account trades it")
        return engine

    def _check_resume(self, ledger: Ledger, account: TradingAccount, point: ResumePoint) -> None:
        """The ledger's account must be the configured one: same interval, same starting money."""
        if point.interval != self.interval.name:
            raise LedgerMismatchError(f"ledger {ledger.path}: {point.symbol} was traded at interval {point.interval}, "
                                      f"the configuration says {self.interval.name}; use another ledger file")
        if point.initial_balance != account.env.initial_balance:
            raise LedgerMismatchError(
                f"ledger {ledger.path}: account {account.name} started {point.symbol} with initial_balance "
                f"{point.initial_balance}, the configuration says {account.env.initial_balance}; "
                "restore the setting or use another ledger file (or account name)")

    async def _check_funding(self, rest: BybitRest) -> None:
        """Before the ledger is opened: every perpetual lists a funding interval and has settled
        funding (its newest settlements, one request, kept for :meth:`_start_funding`) unless
        it was listed less than a funding interval ago, or the daemon stops in one line."""
        for symbol in self.settings.feed.symbols:
            interval_ms = await rest.funding_interval_ms(symbol)
            try:
                latest = self._latest_funding[symbol] = await rest.latest_funding(symbol)
                launched = None if latest else await rest.launch_time_ms(symbol)
                young = launched is not None and await rest.server_time_ms() - launched < interval_ms
            except RestError as exc:
                raise FundingUnavailableError(f"{symbol}: cannot read its funding history ({exc}); a perpetual is not "
                                              "traded without its funding") from None
            if not latest and not young:
                raise FundingUnavailableError(
                    f"{symbol}: the exchange has no funding history (funding every {interval_ms // 60_000} min by "
                    "the instrument); a perpetual is not traded without its funding")

    async def _start_funding(self, symbol: str, ledger: Ledger, rest: BybitRest, funding: FundingFeed,
                             first_open_ms: int | None) -> None:
        """Add the funding history the ledger lacks (since its last stored settlement, or since
        the first stored candle): the newest settlements read at the check, and older ones
        fetched only when those do not reach back and the exchange may have more (a full page);
        store it and hand everything known to the funding feed."""
        known = await ledger.funding_rates(symbol)
        latest = self._latest_funding.pop(symbol)
        if known:
            since = known[-1][0] + 1
        elif first_open_ms is not None:  # the settlements the first stored candle's row carries too
            since = self.interval.grid.shift(first_open_ms, -1) + 1
        else:
            since = latest[-1][0] + 1 if latest else 0  # no candles yet: nothing to cover
        fetched = [s for s in latest if s[0] >= since]
        if latest and since < latest[0][0] and len(latest) >= FUNDING_PAGE:
            try:
                fetched = await rest.fetch_funding(symbol, since, latest[0][0] - 1) + fetched
            except RestError as exc:
                raise FundingUnavailableError(f"{symbol}: cannot read its funding history ({exc}); a perpetual is "
                                              "not traded without its funding") from None
        await ledger.store_funding_rates(symbol, fetched, HISTORY)
        await funding.start(symbol, [*known, *fetched])
        log.info("%s: funding every %d min; %d settlement(s) stored, %d fetched", symbol,
                 funding.interval_ms(symbol) // 60_000, len(known), len(fetched))

    # ----------------------------------------------------------------- decisions
    def _session(self) -> tuple[DaemonReport, Ledger, RetrainScheduler]:
        """The running session's report, ledger and retrainer (set by :meth:`run`)."""
        if self.report is None or self._ledger is None or self.retrainer is None:
            raise RuntimeError("the daemon is not serving")
        return self.report, self._ledger, self.retrainer

    async def _consume(self, symbol: str, feed: CandleFeed) -> None:
        """One symbol's loop; a failure stops this symbol only."""
        stats = self._session()[0].symbols[symbol]
        try:
            async for item in feed.candles(symbol):
                work = asyncio.ensure_future(self._process(symbol, item))
                self._in_flight.add(work)
                work.add_done_callback(self._in_flight.discard)
                await asyncio.shield(work)  # a shutdown lets this decision finish and commit
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            stats.failed = f"{type(exc).__name__}: {exc}"
            log.error("%s: stopped: %s", symbol, stats.failed, exc_info=not isinstance(exc, UserError))

    async def _funding_due(self, symbol: str, candle: Candle, ledger: Ledger) -> FundingRate | None:
        """The funding settled inside ``candle`` (stored beside it first, so a restart applies
        the very same rates), as the engine takes it; ``None`` on spot or when none is due."""
        if self.funding is None:
            return None
        open_ms = candle.open_time_ms
        close_ms = self.interval.grid.close_ms(open_ms)
        resolved = await self.funding.due(symbol, open_ms, close_ms)
        for source in dict.fromkeys(r.source for r in resolved):
            await ledger.store_funding_rates(symbol, [(r.time_ms, r.rate) for r in resolved if r.source == source],
                                             source)
        return due_between(open_ms, close_ms, [(r.time_ms, r.rate) for r in resolved])

    async def _process(self, symbol: str, item: FeedCandle) -> None:
        engine = self.engines[symbol]
        report, ledger, retrainer = self._session()
        funding = await self._funding_due(symbol, item.candle, ledger)
        output = engine.on_candle(item.candle, decided_ms=self.clock.now_ms(), run_id=report.run_id,
                                  arrived_ns=item.received_ns, funding=funding)
        stats = report.symbols[symbol]
        if not output.records:
            await ledger.store_candles([item.candle])
            stats.warmup_candles += 1
            return
        written = await ledger.record_decisions(item.candle, output.records)
        if any(written):
            stats.decisions += 1
            retrainer.on_decided(item.candle)
        else:
            stats.skipped_replays += 1
        committed = [record for record, new in zip(output.records, written, strict=True) if new]
        for record in committed:
            stats.by_account[record.account] = stats.by_account.get(record.account, 0) + 1
            if record.funding is not None:
                amount = record.funding.amount
                stats.funding_paid[record.account] = stats.funding_paid.get(record.account, 0.0) + max(amount, 0.0)
                stats.funding_received[record.account] = (stats.funding_received.get(record.account, 0.0)
                                                          + max(-amount, 0.0))
        latency_ms = (time.perf_counter_ns() - item.received_ns) / 1e6
        report.latencies_ms.append(latency_ms)
        _log_risk_events(symbol, output.records)
        await retrainer.on_committed(symbol, committed)
        for listener in self.listeners:
            listener(symbol, item, latency_ms)

    def _record_feed_problem(self, symbol: str, problem: FeedProblem | None) -> None:
        """Keep the ledger's ``feed_problems`` in step with the feed (``shadow status``, /status)."""
        work = asyncio.ensure_future(self._write_feed_problem(symbol, problem))
        self._in_flight.add(work)
        work.add_done_callback(self._in_flight.discard)

    async def _write_feed_problem(self, symbol: str, problem: FeedProblem | None) -> None:
        report, ledger, _ = self._session()
        try:
            await ledger.journal.set_feed_problem(report.run_id, symbol, problem)
        except LedgerError as exc:  # the log and /health still say it
            log.error("%s: could not record the feed problem in the ledger: %s", symbol, exc)

    # ----------------------------------------------------------------- reporting
    async def _heartbeat(self, feed: CandleFeed) -> None:
        period_s = self.settings.daemon.heartbeat_minutes * 60
        while True:
            await asyncio.sleep(period_s)
            log.info("heartbeat: %s", self.status_line(feed))

    def status_line(self, feed: CandleFeed) -> str:
        """One line: per symbol each account's position and equity, last candle, decisions;
        then feed counters."""
        parts = []
        report = self._session()[0]
        for symbol, engine in self.engines.items():
            stats = report.symbols[symbol]
            problem = feed.problems.get(symbol)
            if stats.failed:
                state = f"FAILED ({stats.failed})"
            elif problem is not None:
                state = f"NOT STREAMING ({problem.describe()})"
            else:
                state = ", ".join(f"{name} pos {a.portfolio.side:+d} equity {a.portfolio.equity:.6g}"
                                  for name, a in engine.accounts.items())
            parts.append(f"{symbol} {state} last {_fmt_ms(engine.last_open_ms)} decisions {stats.decisions}")
        latencies = sorted(report.latencies_ms)
        if latencies:
            parts.append(f"latency p50 {latencies[len(latencies) // 2]:.2f} ms "
                         f"p99 {latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]:.2f} ms")
        feed_stats = feed.stats.as_dict()
        parts.append("feed " + " ".join(f"{k}={v}" for k, v in feed_stats.items() if v))
        return " | ".join(parts)


def _check_live_trials(settings: Settings, accounts: tuple[TradingAccount, ...]) -> None:
    """A live trial runs in a daemon that retrains, beside an account that follows the registry."""
    candles = settings.retrain.live_trial_candles
    if not candles:
        return
    if not settings.retrain.enabled:
        raise UserError(f"invalid value for retrain.live_trial_candles: {candles}: a live trial runs in a daemon that "
                        "retrains; set [retrain] enabled = true or live_trial_candles = 0")
    if not any(a.follows_registry for a in accounts):
        raise UserError(f"invalid value for retrain.live_trial_candles: {candles}: a live trial needs an account "
                        "trading the registry's promoted model (strategy = 'registry') to be the incumbent")


def _serving_label(serving: ServingStrategy) -> str:
    return f"{serving.label} {serving.model_version}" if serving.model_version else serving.label


def _log_risk_events(symbol: str, records: tuple[DecisionRecord, ...]) -> None:
    for record in records:
        for event in record.risk_events:
            log.warning("%s %s: risk: %s at %s: %s", record.account, symbol, event.kind, _fmt_ms(event.time_ms),
                        event.detail)


def config_hash(settings: Settings) -> str:
    """sha256 prefix of the resolved settings, stored with each session (``runs.config_hash``)."""
    return hashlib.sha256(settings.model_dump_json().encode()).hexdigest()[:16]


def _code_version() -> str:
    try:
        return importlib_metadata.version("shadow-trader")
    except importlib_metadata.PackageNotFoundError:
        return "unknown"


def _fmt_ms(ms: int | None) -> str:
    return "-" if ms is None else format_ms(ms)
