"""Daemon latency and memory, against the local Bybit replay server on 127.0.0.1.

1. One symbol: time from a confirmed kline message arriving to its decision committed in
   SQLite (the daemon's own ``received_ns`` -> after COMMIT), p50/p99, PPO policy.
2. Fifty symbols closing the same minute: for each minute, the time from the first of
   the 50 messages arriving to the last of the 50 decisions committed.
3. Memory: resident set size over a 100,000-candle replay (after 10% vs at the end).

Baseline, in the same run: a naive bot's work per candle with none of Shadow's pipeline
(``json.loads`` of the message, SB3 ``model.predict``, one autocommit sqlite3 INSERT).
Run: ``python -m benchmarks.bench_daemon`` (about 2 minutes).
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks.common import real_candles
from bot.daemon import Daemon
from bot.replay.market import ReplayMarket, ReplaySeries
from bot.replay.server import ReplayServer
from config.settings import DaemonSettings, EnvSettings, ExchangeSettings, FeedSettings, LedgerSettings, Settings
from env.crypto_trading_env import CryptoTradingEnv

HISTORY = 1_000


def untrained_model(folder: Path, candles: pd.DataFrame) -> Path:
    """The default PPO policy (untrained), saved with Shadow metadata."""
    import torch
    from stable_baselines3 import PPO

    from strategies.model_metadata import ModelMetadata

    torch.set_num_threads(1)
    model = PPO("MlpPolicy", CryptoTradingEnv(candles.iloc[:2000]), seed=0, device="cpu")
    path = folder / "ppo.zip"
    model.save(path)
    ModelMetadata.for_current_code(lookback_window=20, env=EnvSettings().model_dump(mode="json"), symbol="BTCUSDT",
                                   timeframe="1m", data_range={}, hyperparameters={}, seed=0).save_beside(path)
    return path


async def replay(frame: pd.DataFrame, symbols: list[str], db: Path, strategy: str, speed: float,
                 on_decision=None, *, history: int = HISTORY, **sections: object) -> Daemon:
    """Run the daemon over ``frame`` until every symbol decided its last candle, or until
    ``on_decision(daemon, symbol, item)`` returns True. ``sections``: more settings."""
    market = ReplayMarket([ReplaySeries.from_frame(s, frame) for s in symbols], history=history)
    last_ms = int(market.open_time_ms[-1])
    async with ReplayServer(market, speed=speed, updates_per_candle=0) as server:
        settings = Settings(
            exchange=ExchangeSettings(ws_url=server.ws_url(), rest_url=server.rest_url),
            feed=FeedSettings(symbols=symbols), ledger=LedgerSettings(db_path=db),
            daemon=DaemonSettings(strategy=strategy, warmup_candles=history, heartbeat_minutes=60), **sections,
        )
        daemon = Daemon(settings)
        stop = asyncio.Event()
        remaining = set(symbols)

        def hook(symbol: str, item, latency_ms: float) -> None:
            if on_decision is not None and on_decision(daemon, symbol, item):
                stop.set()
            if item.candle.open_time_ms >= last_ms:
                remaining.discard(symbol)
                if not remaining:
                    stop.set()

        daemon.listeners.append(hook)
        await daemon.run(stop)
    return daemon


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q))


def naive_baseline(model_path: Path, frame: pd.DataFrame, n: int = 2000) -> list[float]:
    """Per-candle ms of json.loads + model.predict + one autocommit INSERT."""
    from stable_baselines3 import PPO

    model = PPO.load(model_path, device="cpu")
    env = CryptoTradingEnv(frame.iloc[: n + 300])
    obs, _ = env.reset()
    message = json.dumps({"topic": "kline.1.BTCUSDT", "data": [{"start": 0, "close": "1", "confirm": True}]})
    with tempfile.TemporaryDirectory() as tmp:
        conn = sqlite3.connect(Path(tmp) / "naive.sqlite", isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("CREATE TABLE d (t INTEGER PRIMARY KEY, action INTEGER)")
        times = []
        for t in range(n):
            start = time.perf_counter_ns()
            json.loads(message)
            action, _ = model.predict(obs, deterministic=True)
            conn.execute("INSERT INTO d VALUES (?, ?)", (t, int(action)))
            times.append((time.perf_counter_ns() - start) / 1e6)
        conn.close()
    return times


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def main() -> None:
    import logging

    logging.basicConfig(level=logging.WARNING)
    frame = real_candles(HISTORY + 100_000)
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        model = untrained_model(tmp_path, frame)
        spec = f"ppo:{model}"

        baseline = naive_baseline(model, frame)
        print(f"baseline (json.loads + SB3 predict + sqlite3 INSERT): p50 {percentile(baseline, 50):.3f} ms, "
              f"p99 {percentile(baseline, 99):.3f} ms")

        one = await replay(frame.iloc[: HISTORY + 3000], ["BTCUSDT"], tmp_path / "one.sqlite", spec, speed=100)
        lat = list(one.report.latencies_ms)
        print(f"1 symbol, {len(lat)} decisions: arrival -> committed p50 {percentile(lat, 50):.3f} ms, "
              f"p99 {percentile(lat, 99):.3f} ms  (p50 {percentile(lat, 50) / percentile(baseline, 50):.2f}x "
              f"the baseline's work alone; target p99 < 20 ms)")

        symbols = [f"S{i:02d}USDT" for i in range(50)]
        arrivals: dict[int, list[int]] = {}
        commits: dict[int, list[int]] = {}

        def record(daemon: Daemon, symbol: str, item) -> None:
            arrivals.setdefault(item.candle.open_time_ms, []).append(item.received_ns)
            commits.setdefault(item.candle.open_time_ms, []).append(time.perf_counter_ns())

        await replay(frame.iloc[: HISTORY + 300], symbols, tmp_path / "fifty.sqlite", spec, speed=4, on_decision=record)
        spans = [(max(commits[t]) - min(arrivals[t])) / 1e6 for t in commits if len(commits[t]) == 50]
        print(f"50 symbols, {len(spans)} minutes: first arrival -> all 50 committed "
              f"p50 {percentile(spans, 50):.1f} ms, p99 {percentile(spans, 99):.1f} ms, max {max(spans):.1f} ms "
              "(target: all within 250 ms)")

        samples: list[tuple[int, float]] = []
        count = [0]

        def sample(daemon: Daemon, symbol: str, item) -> None:
            count[0] += 1
            if count[0] % 10_000 == 0:
                samples.append((count[0], rss_mb()))

        started = time.perf_counter()
        await replay(frame, ["BTCUSDT"], tmp_path / "long.sqlite", spec, speed=5000, on_decision=sample)
        elapsed = time.perf_counter() - started
        early, late = samples[0][1], samples[-1][1]
        print(f"100k-candle replay in {elapsed:.0f} s ({count[0] / elapsed:,.0f} decisions/s): RSS after "
              f"{samples[0][0]:,} decisions {early:.0f} MB, after {samples[-1][0]:,} {late:.0f} MB "
              f"(growth {100 * (late / early - 1):+.1f}%; target <= +10%); "
              f"median RSS over samples {statistics.median(m for _, m in samples):.0f} MB")


if __name__ == "__main__":
    asyncio.run(main())
