"""``GET /metrics``: the daemon's numbers in Prometheus text format (``prometheus-client``).

Most values already live somewhere: the feed's and the REST client's counters, each
symbol's session counters and account, the retraining log in the ledger. A custom
collector reads them at scrape time instead of mirroring every event into a second set
of counters (the prometheus-client pattern for proxying existing stats), so the two can
never disagree. Only the decision latency is observed per event, into a histogram, via
the daemon's ``listeners`` hook.

Every metric is prefixed ``shadow_``; docs/service.md lists them.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Histogram, ProcessCollector
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector

from bot.bybit.sequencer import FeedCandle
from state.database import connect_reader
from state.errors import LedgerError
from state.readers import RetrainSummary, retrain_summary
from state.records import RetrainStatus

if TYPE_CHECKING:
    from bot.daemon import Daemon

LATENCY_BUCKETS_S: tuple[float, ...] = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)

FEED_COUNTERS: dict[str, str] = {
    "messages": "websocket messages received",
    "malformed": "websocket messages skipped as not valid Bybit data",
    "unknown_topics": "pushes for topics never subscribed",
    "duplicates": "candle copies dropped (stream repeats and backfill overlap)",
    "out_of_order": "stream candles older than one already sent",
    "gaps": "holes detected in the stream (each backfilled over REST)",
    "skipped_absent": "candles the exchange does not have (hole given up)",
    "connections": "websocket connections opened",
    "subscribe_refusals": "topic subscriptions Bybit refused (each retry counts)",
    "reconnects": "websocket connections lost or closed and reopened",
    "watchdog_closes": "connections closed by the watchdog after a silence",
    "connect_failures": "failed attempts to open a websocket connection",
    "backfills": "successful REST backfill calls",
    "backfill_failures": "REST backfill calls that failed after their retries",
}
REST_COUNTERS: dict[str, str] = {
    "requests": "REST market-data requests sent",
    "retries": "REST requests repeated after a rate-limit or network error",
    "rate_limited": "REST rate-limit answers (retCode 10006/10018)",
    "forbidden": "REST HTTP 403 answers (IP ban or blocked region), each followed by forbidden_wait_s without requests",
}
RETRAIN_OUTCOMES: tuple[str, ...] = tuple(s for s in RetrainStatus if s != RetrainStatus.RUNNING)


class _DaemonCollector(Collector):
    """Reads the daemon's state at each scrape (no events are mirrored)."""

    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon
        self.retrains: RetrainSummary | None = None  # refreshed from the ledger before each scrape

    def collect(self) -> Iterator[Metric]:
        yield from self._candles()
        yield from self._connection()
        yield from self._accounts()
        yield from self._retraining()

    def _candles(self) -> Iterator[Metric]:
        daemon = self.daemon
        feed = daemon.feed.stats if daemon.feed is not None else None
        yield CounterMetricFamily("shadow_candles_received", "confirmed candles received from the websocket",
                                  value=feed.stream_candles if feed else 0)
        yield CounterMetricFamily("shadow_candles_backfilled", "candles fetched over REST and passed to the engine",
                                  value=feed.backfilled_candles if feed else 0)
        processed = CounterMetricFamily("shadow_candles_processed", "candles the engine processed this session "
                                        "(decisions, warm-up and already-decided replays)", labels=["symbol"])
        decisions = CounterMetricFamily("shadow_decisions", "decisions written to the ledger this session",
                                        labels=["symbol"])
        replays = CounterMetricFamily("shadow_decisions_already_recorded", "candles found already decided in the "
                                      "ledger (a replay after a restart); nothing was written", labels=["symbol"])
        if daemon.report is not None:
            for symbol, stats in daemon.report.symbols.items():
                processed.add_metric([symbol], stats.decisions + stats.warmup_candles + stats.skipped_replays)
                decisions.add_metric([symbol], stats.decisions)
                replays.add_metric([symbol], stats.skipped_replays)
        yield from (processed, decisions, replays)

    def _connection(self) -> Iterator[Metric]:
        daemon = self.daemon
        feed = daemon.feed.stats if daemon.feed is not None else None
        yield GaugeMetricFamily("shadow_stream_connected", "1 while the websocket is open and subscribed",
                                value=float(bool(feed and feed.connected)))
        for name, help_text in FEED_COUNTERS.items():
            yield CounterMetricFamily(f"shadow_feed_{name}", help_text, value=getattr(feed, name) if feed else 0)
        rest = daemon.rest.stats if daemon.rest is not None else None
        for name, help_text in REST_COUNTERS.items():
            yield CounterMetricFamily(f"shadow_rest_{name}", help_text, value=getattr(rest, name) if rest else 0)

    def _accounts(self) -> Iterator[Metric]:
        daemon = self.daemon
        labels = ["symbol"]
        equity = GaugeMetricFamily("shadow_equity", "paper account equity (quote currency)", labels=labels)
        side = GaugeMetricFamily("shadow_position_side", "position: 1 long, -1 short, 0 flat", labels=labels)
        qty = GaugeMetricFamily("shadow_position_qty", "position size (base currency)", labels=labels)
        unrealized = GaugeMetricFamily("shadow_unrealized_pnl", "open position's PnL at the last close", labels=labels)
        drawdown = GaugeMetricFamily("shadow_drawdown", "fraction below peak equity", labels=labels)
        last_close = GaugeMetricFamily("shadow_last_candle_close_timestamp_seconds",
                                       "close time of the newest candle processed", labels=labels)
        failed = GaugeMetricFamily("shadow_symbol_failed", "1 when the symbol's task stopped on an error",
                                   labels=labels)
        model = GaugeMetricFamily("shadow_model_info", "the strategy and model version deciding now (value 1)",
                                  labels=["symbol", "strategy", "model_version"])
        paid = CounterMetricFamily("shadow_funding_paid", "perpetual funding the positions paid this session "
                                   "(quote currency)", labels=labels)
        received = CounterMetricFamily("shadow_funding_received", "perpetual funding the positions received this "
                                       "session (quote currency)", labels=labels)
        announced_rate = GaugeMetricFamily("shadow_funding_rate_announced", "the funding rate the exchange announces "
                                           "for the next funding time", labels=labels)
        next_funding = GaugeMetricFamily("shadow_next_funding_timestamp_seconds", "the next funding time the exchange "
                                         "announced", labels=labels)
        for symbol, engine in daemon.engines.items():
            p = engine.portfolio
            equity.add_metric([symbol], p.equity)
            side.add_metric([symbol], p.side)
            qty.add_metric([symbol], p.qty)
            unrealized.add_metric([symbol], p.unrealized_pnl)
            drawdown.add_metric([symbol], p.drawdown)
            if engine.last_open_ms is not None:
                last_close.add_metric([symbol], daemon.interval.grid.close_ms(engine.last_open_ms) / 1000)
            stats = daemon.report.symbols.get(symbol) if daemon.report is not None else None
            failed.add_metric([symbol], float(bool(stats and stats.failed)))
            model.add_metric([symbol, engine.serving.label, engine.serving.model_version or ""], 1.0)
            if daemon.funding is not None:
                paid.add_metric([symbol], stats.funding_paid if stats else 0.0)
                received.add_metric([symbol], stats.funding_received if stats else 0.0)
                announced = daemon.funding.announced(symbol)
                if announced is not None:
                    next_funding.add_metric([symbol], announced[0] / 1000)
                    announced_rate.add_metric([symbol], announced[1])
        yield from (equity, side, qty, unrealized, drawdown, last_close, failed, model)
        if daemon.funding is not None:
            yield from (paid, received, announced_rate, next_funding)

    def _retraining(self) -> Iterator[Metric]:
        summary = self.retrains
        runs = CounterMetricFamily("shadow_retrain_runs", "finished retraining runs by outcome (from the ledger)",
                                   labels=["outcome"])
        for outcome in RETRAIN_OUTCOMES:
            runs.add_metric([outcome], summary.runs_by_status.get(outcome, 0) if summary else 0)
        yield runs
        yield GaugeMetricFamily("shadow_retrain_running", "retraining runs in progress",
                                value=summary.runs_by_status.get(RetrainStatus.RUNNING, 0) if summary else 0)
        if summary is not None and summary.last_duration_s is not None and summary.last_finished_ms is not None:
            yield GaugeMetricFamily("shadow_retrain_last_duration_seconds", "duration of the last finished "
                                    "retraining run", value=summary.last_duration_s)
            yield GaugeMetricFamily("shadow_retrain_last_finished_timestamp_seconds",
                                    "when the last retraining run finished", value=summary.last_finished_ms / 1000)


def read_retrain_summary(db_path: Path) -> RetrainSummary | None:
    """The ledger's retraining log, or ``None`` while there is no readable ledger yet."""
    try:
        with closing(connect_reader(db_path, lock_timeout_s=1.0)) as conn:
            return retrain_summary(conn)
    except (LedgerError, sqlite3.Error):
        return None


class DaemonMetrics:
    """The Prometheus registry of one daemon: create it before ``daemon.run()`` starts.

    A registry of its own (not prometheus-client's global one), so that several daemons
    in one process (tests) do not share numbers.
    """

    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon
        self.registry = CollectorRegistry()
        self.latency = Histogram("shadow_decision_latency_seconds",
                                 "candle message arrival to decision committed in the ledger",
                                 buckets=LATENCY_BUCKETS_S, registry=self.registry)
        self._collector = _DaemonCollector(daemon)
        self.registry.register(self._collector)
        ProcessCollector(registry=self.registry)  # process_resident_memory_bytes, cpu seconds, open fds
        daemon.listeners.append(self._observe)

    def _observe(self, symbol: str, item: FeedCandle, latency_ms: float) -> None:
        self.latency.observe(latency_ms / 1000)

    async def render(self, accept: str | None = None) -> tuple[bytes, str]:
        """The exposition (body, content type) in the format ``accept`` asks for (text by default)."""
        self._collector.retrains = await asyncio.to_thread(read_retrain_summary, self.daemon.settings.ledger.db_path)
        encoder, content_type = choose_encoder(accept or "")
        return encoder(self.registry), content_type
