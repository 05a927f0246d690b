"""What running as a service costs: the HTTP endpoints under scraping, and online backups.

1. Decision latency (candle message arrival -> decision committed) of 50 symbols replayed
   from the local Bybit server, **with** ``/metrics`` and ``/health`` scraped every 100 ms
   (ten times Prometheus' usual rate) against the **baseline** of the same replay with no
   HTTP server at all; plus what one scrape of each endpoint takes, seen by the client.
2. ``shadow backup`` (SQLite's online backup API, integrity check, fsync, rename) of a
   ledger of real decisions, against the **baseline** ``shutil.copyfile`` of the same file
   (fast, but not a consistent copy of a ledger being written).

Run: ``python -m benchmarks.bench_service`` (about a minute).
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import tempfile
import time
from pathlib import Path

import aiohttp
import numpy as np

from benchmarks.common import best_of, real_candles
from bot.daemon import Daemon
from bot.http_api import ServiceApi
from bot.replay.market import ReplayMarket, ReplaySeries
from bot.replay.server import ReplayServer
from config.settings import DaemonSettings, ExchangeSettings, FeedSettings, LedgerSettings, ServiceSettings, Settings
from state.backup import backup_ledger
from state.ledger import Ledger
from state.replay import replay_decisions

HISTORY = 300
SYMBOLS = [f"S{i:02d}USDT" for i in range(50)]


async def replay_latencies(db: Path, *, scrape: bool) -> tuple[list[float], dict[str, list[float]]]:
    """Decision latencies (ms) of a 50-symbol replay, and the client-side ms of each scrape."""
    frame = real_candles(HISTORY + 120)
    market = ReplayMarket([ReplaySeries.from_frame(s, frame) for s in SYMBOLS], history=HISTORY)
    last_ms = int(market.open_time_ms[-1])
    scrapes: dict[str, list[float]] = {"/metrics": [], "/health": []}
    async with ReplayServer(market, speed=10, updates_per_candle=0) as server:
        settings = Settings(
            exchange=ExchangeSettings(ws_url=server.ws_url(), rest_url=server.rest_url),
            feed=FeedSettings(symbols=SYMBOLS), ledger=LedgerSettings(db_path=db),
            daemon=DaemonSettings(strategy="sma:fast=5,slow=20", warmup_candles=HISTORY, heartbeat_minutes=60),
            service=ServiceSettings(http="127.0.0.1:0" if scrape else ""),
        )
        daemon = Daemon(settings, clock=market.clock)
        stop = asyncio.Event()
        remaining = set(SYMBOLS)

        def done(symbol: str, item, latency_ms: float) -> None:
            if item.candle.open_time_ms >= last_ms:
                remaining.discard(symbol)
                if not remaining:
                    stop.set()

        daemon.listeners.append(done)
        if not scrape:
            await daemon.run(stop)
            return list(daemon.report.latencies_ms), scrapes
        async with ServiceApi(daemon, settings.service) as api, aiohttp.ClientSession() as client:
            task = asyncio.create_task(daemon.run(stop))
            while not task.done():
                for path, times in scrapes.items():
                    started = time.perf_counter()
                    async with client.get(api.url + path) as response:
                        await response.read()
                    times.append((time.perf_counter() - started) * 1000)
                await asyncio.sleep(0.1)
            await task
        return list(daemon.report.latencies_ms), scrapes


async def ledger_of(path: Path, decisions: int) -> None:
    async with await Ledger.open(path) as ledger:
        for record, _ in replay_decisions(real_candles(decisions)):
            await ledger.record_decision(record)


def p(values: list[float], q: float) -> float:
    return float(np.percentile(values, q))


async def main() -> None:
    logging.basicConfig(level=logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        base, _ = await replay_latencies(folder / "plain.sqlite", scrape=False)
        served, scrapes = await replay_latencies(folder / "served.sqlite", scrape=True)
        print(f"decision latency, 50 symbols, {len(base)} / {len(served)} decisions (ms):")
        print(f"  baseline, no HTTP server:        p50 {p(base, 50):7.3f}  p99 {p(base, 99):7.3f}")
        print(f"  /metrics + /health every 100 ms: p50 {p(served, 50):7.3f}  p99 {p(served, 99):7.3f}  "
              f"(ratio p50 {p(served, 50) / p(base, 50):.2f}x, p99 {p(served, 99) / p(base, 99):.2f}x)")
        for path, times in scrapes.items():
            print(f"  one {path} scrape (client side, {len(times)} scrapes): p50 {p(times, 50):.2f} ms, "
                  f"p99 {p(times, 99):.2f} ms")

        db = folder / "ledger.sqlite"
        await ledger_of(db, 20_000)
        size_mb = db.stat().st_size / 1e6
        copies = iter(range(1000))
        raw = best_of(3, lambda: shutil.copyfile(db, folder / f"raw-{next(copies)}.sqlite"))
        online = best_of(3, lambda: backup_ledger(db, folder / f"backup-{next(copies)}.sqlite", now_ms=0))
        print(f"backup of a {size_mb:.1f} MB ledger (20,000 real decisions), best of 3:")
        print(f"  baseline shutil.copyfile (not consistent while written): {raw * 1000:7.1f} ms")
        print(f"  shadow backup (online API + integrity_check + fsync):     {online * 1000:7.1f} ms  "
              f"({online / raw:.1f}x the raw copy, {size_mb / online:.0f} MB/s)")


if __name__ == "__main__":
    asyncio.run(main())
