"""Start-up of many symbols: from ``shadow run`` starting to every symbol streaming.

On a first start the daemon fetches ``warmup_candles`` closed candles per symbol over REST,
stores them, warms each symbol's features and subscribes every topic. With 1,000 symbols
this took about 3.5 minutes. Why: one symbol after another, each with two requests (the
server's clock, then the candles) behind ccxt's throttle of 10 Bybit market requests per
second, so 2,000 requests took 200 s while the CPU idled.

Both configurations run here against the same local Bybit replay server (in its own
process, so it does not share the daemon's core) with the bundled real candles:

- ``before``: symbols prepared one at a time, requests paced at 10 per second: what the
  daemon did (one clock read per symbol, as each read finishes before the next symbol);
- ``after``: the daemon as it is: 32 symbols prepared at once, requests paced at
  ``[exchange] rest_requests_per_s`` (40), concurrent clock reads shared.

Run: ``python -m benchmarks.bench_warmup --symbols 1000`` (about 5 minutes; ``--skip-before``
for the current code alone).
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import resource
import tempfile
import time
from pathlib import Path

from benchmarks.common import real_candles

HISTORY = 240  # closed candles on the server: more than the 220 the daemon warms up on
WARMUP = 220


def serve(symbols: int, ready: multiprocessing.Queue) -> None:
    """A replay server of ``symbols`` symbols whose clock stands still (speed ~0)."""
    from bot.replay.market import ReplayMarket, ReplaySeries
    from bot.replay.server import ReplayServer

    frame = real_candles(HISTORY + 5)
    market = ReplayMarket([ReplaySeries.from_frame(name, frame) for name in names(symbols)], history=HISTORY)

    async def run() -> None:
        async with ReplayServer(market, speed=1e-6, updates_per_candle=0) as server:
            ready.put(server.port)
            await asyncio.Event().wait()

    asyncio.run(run())


def names(symbols: int) -> list[str]:
    return [f"COIN{k:04d}USDT" for k in range(symbols)]  # as long as 1000PEPEUSDT


async def warm_up(port: int, symbols: int, db: Path, *, concurrency: int, per_s: float) -> dict[str, float]:
    """Start a daemon and time it until every symbol streams; then stop it."""
    import bot.daemon
    from config.settings import DaemonSettings, ExchangeSettings, FeedSettings, LedgerSettings, Settings

    bot.daemon.WARMUP_CONCURRENCY = concurrency
    settings = Settings(
        exchange=ExchangeSettings(ws_url=f"ws://127.0.0.1:{port}/v5/public/linear", rest_url=f"http://127.0.0.1:{port}",
                                  rest_requests_per_s=per_s),
        feed=FeedSettings(symbols=names(symbols)), ledger=LedgerSettings(db_path=db),
        daemon=DaemonSettings(strategy="flat", warmup_candles=WARMUP, heartbeat_minutes=60),
    )
    daemon = bot.daemon.Daemon(settings)
    stop = asyncio.Event()
    cpu_before = time.process_time()
    start = time.perf_counter()
    task = asyncio.create_task(daemon.run(stop))
    while daemon.report is None and not task.done():
        await asyncio.sleep(0.05)
    prepared = time.perf_counter() - start
    while (daemon.feed is None or not daemon.feed.stats.connected) and not task.done():
        await asyncio.sleep(0.05)
    streaming = time.perf_counter() - start
    requests = daemon.rest.stats.requests if daemon.rest is not None else 0
    cpu = time.process_time() - cpu_before
    stop.set()
    await task
    return {"prepared_s": prepared, "streaming_s": streaming, "requests": requests, "cpu_s": cpu}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--symbols", type=int, default=1000)
    parser.add_argument("--skip-before", action="store_true", help="time the current configuration only")
    args = parser.parse_args()

    import logging

    logging.basicConfig(level=logging.WARNING)
    ctx = multiprocessing.get_context("spawn")
    ready: multiprocessing.Queue = ctx.Queue()
    server = ctx.Process(target=serve, args=(args.symbols, ready), daemon=True)
    server.start()
    port = ready.get(timeout=300)
    runs = {} if args.skip_before else {"before (serial, 10 req/s)": (1, 10.0)}
    runs["after (32 at once, 40 req/s)"] = (32, 40.0)
    try:
        results = {}
        for label, (concurrency, per_s) in runs.items():
            with tempfile.TemporaryDirectory() as tmp:
                results[label] = asyncio.run(warm_up(port, args.symbols, Path(tmp) / "ledger.sqlite",
                                                     concurrency=concurrency, per_s=per_s))
            r = results[label]
            print(f"{label:32s} {args.symbols} symbols: all prepared {r['prepared_s']:6.1f} s, all streaming "
                  f"{r['streaming_s']:6.1f} s, {int(r['requests'])} REST requests, daemon CPU {r['cpu_s']:.1f} s",
                  flush=True)
        if len(results) == 2:
            before, after = results.values()
            print(f"speed-up to all streaming: {before['streaming_s'] / after['streaming_s']:.1f}x")
        print(f"peak RSS of this process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")
    finally:
        server.terminate()
        server.join()


if __name__ == "__main__":
    main()
