"""Message-to-candle latency of the live feed, against a plain-JSON baseline in the same run.

Two measurements, both on real BTCUSDT 1m candles from ``data/sample``:

1. **Parser.** One confirmed kline message (bytes, as Bybit sends it) to a validated
   ``Candle``: ``bot.bybit.parse`` (pydantic, every field checked) against the
   baseline ``json.loads`` + dict access + ``float()`` with no validation.
2. **Client.** A confirmed kline message arriving on the socket to the consumer holding
   the candle: ``CandleFeed`` (parse, sequencer, per-symbol queue, consumer task) against
   a baseline client on the same ``websockets`` connection that does ``json.loads`` +
   dict access into a per-symbol queue. The local replay server pushes every symbol's
   candle when the minute closes (plus two forming updates per candle, as Bybit does),
   with 1 symbol and with 50 symbols closing the same minute.

Run: ``python benchmarks/bench_feed.py [--candles 100] [--speed 10] [--rounds 3]``. Prints
p50/p99 in microseconds and the ratio to the baseline (about two minutes).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from websockets.asyncio.client import connect

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a script: the repository's packages first (hence the E402s below)

from bot.bybit.feed import CandleFeed  # noqa: E402
from bot.bybit.markets import INTERVALS, kline_topic  # noqa: E402
from bot.bybit.parse import TopicTarget, closed_candles, decode  # noqa: E402
from bot.bybit.rest import BybitRest  # noqa: E402
from bot.bybit.schemas import KlinePush  # noqa: E402
from bot.replay.market import ReplayMarket, ReplaySeries  # noqa: E402
from bot.replay.server import ReplayServer  # noqa: E402
from config.settings import ExchangeSettings, FeedSettings  # noqa: E402
from env.candles import load_candles  # noqa: E402
from env.types import Candle  # noqa: E402

M1 = INTERVALS["1m"]
HISTORY = 30


def percentiles_us(samples_ns: Sequence[int]) -> tuple[float, float]:
    values = np.asarray(samples_ns, dtype=np.float64) / 1000.0
    return float(np.percentile(values, 50)), float(np.percentile(values, 99))


def baseline_parse(raw: str | bytes, topics: dict[str, TopicTarget]) -> list[Candle]:
    """json.loads + dict access + float(): what the parser costs without any validation."""
    message = json.loads(raw)
    target = topics[message["topic"]]
    return [
        Candle(target.symbol, target.interval.name, d["start"], float(d["open"]), float(d["high"]),
               float(d["low"]), float(d["close"]), float(d["volume"]))
        for d in message["data"] if d["confirm"]
    ]


def shadow_parse(raw: bytes, topics: dict[str, TopicTarget]) -> list[Candle]:
    push = decode(raw)
    assert isinstance(push, KlinePush)
    return closed_candles(push, topics)


def bench_parser(frame: pd.DataFrame, repeats: int, gap_s: float) -> dict[str, tuple[float, float]]:
    """Per-message parse time; with ``gap_s`` > 0 each message follows a pause, as live
    messages do (caches and branch predictors have gone cold), otherwise back to back."""
    market = ReplayMarket([ReplaySeries.from_frame("BTCUSDT", frame)], history=1)
    messages = [market.kline_push("BTCUSDT", i).encode() for i in range(market.length)]
    topics = {kline_topic("BTCUSDT", M1): TopicTarget("BTCUSDT", M1)}
    assert shadow_parse(messages[0], topics) == baseline_parse(messages[0], topics)
    results = {}
    for name, parse in (("baseline json.loads + dict", baseline_parse), ("shadow decode + validate", shadow_parse)):
        samples = []
        for _ in range(repeats):
            for raw in messages:
                if gap_s:
                    time.sleep(gap_s)
                start = time.perf_counter_ns()
                parse(raw, topics)
                samples.append(time.perf_counter_ns() - start)
        results[name] = percentiles_us(samples)
    return results


def symbol_series(frame: pd.DataFrame, n_symbols: int) -> list[ReplaySeries]:
    return [ReplaySeries.from_frame(f"S{k:02d}USDT", frame) for k in range(n_symbols)]


def fast_settings(server: ReplayServer) -> ExchangeSettings:
    return ExchangeSettings(ws_url=server.ws_url(), rest_url=server.rest_url, ping_interval_s=5, watchdog_s=30)


async def run_shadow_client(frame: pd.DataFrame, n_symbols: int, speed: float) -> list[int]:
    series = symbol_series(frame, n_symbols)
    market = ReplayMarket(series, history=HISTORY)
    last_ms = int(market.open_time_ms[-1])
    resume = {s.symbol: int(market.open_time_ms[HISTORY - 1]) for s in series}
    latencies: list[int] = []
    async with ReplayServer(market, speed=speed) as server:
        exchange = fast_settings(server)
        async with BybitRest(exchange) as rest, CandleFeed(
            exchange, FeedSettings(symbols=[s.symbol for s in series]), rest, resume_after=resume,
            rng=random.Random(0),
        ) as feed:

            async def consume(symbol: str) -> None:
                async for item in feed.candles(symbol):
                    if item.source == "stream":
                        latencies.append(time.perf_counter_ns() - item.received_ns)
                    if item.candle.open_time_ms >= last_ms:
                        return

            await asyncio.gather(*(consume(s.symbol) for s in series))
    return latencies


async def run_baseline_client(frame: pd.DataFrame, n_symbols: int, speed: float) -> list[int]:
    series = symbol_series(frame, n_symbols)
    market = ReplayMarket(series, history=HISTORY)
    last_ms = int(market.open_time_ms[-1])
    topics = {kline_topic(s.symbol, M1): TopicTarget(s.symbol, M1) for s in series}
    queues: dict[str, asyncio.Queue[tuple[Candle, int]]] = {s.symbol: asyncio.Queue() for s in series}
    latencies: list[int] = []

    async def consume(symbol: str) -> None:
        while True:
            candle, received_ns = await queues[symbol].get()
            latencies.append(time.perf_counter_ns() - received_ns)
            if candle.open_time_ms >= last_ms:
                return

    async with ReplayServer(market, speed=speed) as server, connect(server.ws_url(), ping_interval=None) as ws:
        await ws.send(json.dumps({"op": "subscribe", "args": list(topics)}))
        consumers = asyncio.gather(*(consume(s.symbol) for s in series))

        async def read() -> None:
            async for raw in ws:
                received_ns = time.perf_counter_ns()
                if '"topic"' not in raw:  # an op reply
                    continue
                for candle in baseline_parse(raw, topics):
                    queues[candle.symbol].put_nowait((candle, received_ns))

        reader = asyncio.create_task(read())
        await consumers
        reader.cancel()
    return latencies


def report(title: str, rows: dict[str, tuple[float, float]], baseline: str) -> None:
    base50, base99 = rows[baseline]
    print(f"\n{title}")
    print(f"  {'':34s} {'p50 µs':>9s} {'p99 µs':>9s} {'p50 ratio':>10s} {'p99 ratio':>10s}")
    for name, (p50, p99) in rows.items():
        print(f"  {name:34s} {p50:9.1f} {p99:9.1f} {p50 / base50:9.2f}x {p99 / base99:9.2f}x")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--candles", type=int, default=100, help="candles replayed per client run")
    parser.add_argument("--speed", type=float, default=10.0, help="candles per second of the replay")
    parser.add_argument("--repeats", type=int, default=5, help="passes over 2,000 messages in the parser benchmark")
    parser.add_argument("--rounds", type=int, default=3, help="runs of each client (the median is reported)")
    args = parser.parse_args(argv)

    frame = load_candles(ROOT / "data" / "sample" / "btcusdt_1m_2023-03.csv.gz")
    print(f"python {sys.version.split()[0]}, {args.candles} candles per client run at {args.speed:g} candles/s")
    report("parser, back to back: confirmed kline message -> Candle (2,000 real candles)",
           bench_parser(frame.iloc[:2000], args.repeats, 0.0), "baseline json.loads + dict")
    report("parser, one message every 5 ms as live (300 real candles)",
           bench_parser(frame.iloc[:300], 1, 0.005), "baseline json.loads + dict")

    window = frame.iloc[: HISTORY + args.candles]
    clients = (("baseline json.loads + queue", run_baseline_client), ("shadow CandleFeed", run_shadow_client))
    for n_symbols in (1, 50):
        per_round: dict[str, list[tuple[float, float]]] = {name: [] for name, _ in clients}
        for _ in range(args.rounds):  # alternate the clients so machine noise hits both alike
            for name, client in clients:
                samples = asyncio.run(client(window, n_symbols, args.speed))
                expected = n_symbols * args.candles
                assert len(samples) == expected, f"{name}: {len(samples)} candles, expected {expected}"
                per_round[name].append(percentiles_us(samples))
        rows = {name: (float(np.median([r[0] for r in rounds])), float(np.median([r[1] for r in rounds])))
                for name, rounds in per_round.items()}
        report(f"client: message arrival -> consumer holds the candle, {n_symbols} symbol(s) closing together "
               f"({n_symbols * args.candles} candles a run, median of {args.rounds} runs)",
               rows, "baseline json.loads + queue")

if __name__ == "__main__":
    main()
