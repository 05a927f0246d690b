"""Helpers shared by the benchmark scripts: real candles at any length, and timing."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from env.candles import load_candles

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "data" / "sample" / "btcusdt_1m_2023-03.csv.gz"


def real_candles(n: int) -> pd.DataFrame:
    """``n`` one-minute candles: the bundled real sample, extended past its 30,240 rows by
    replaying its own candle shapes (returns, ranges, volumes) after its last close."""
    base = load_candles(SAMPLE)
    if n <= len(base):
        return base.iloc[:n].reset_index(drop=True)
    reps = -(-n // len(base))
    ratios = base[["open", "high", "low", "close"]].to_numpy() / base["close"].to_numpy()[:, None]
    growth = base["close"].iloc[-1] / base["close"].iloc[0]
    scale = np.repeat(growth ** np.arange(reps), len(base))[:n]
    closes = np.tile(base["close"].to_numpy(), reps)[:n] * scale
    ohlc = np.tile(ratios, (reps, 1))[:n] * closes[:, None]
    start = int(base["open_time_ms"].iloc[0])
    return pd.DataFrame({
        "open_time_ms": start + 60_000 * np.arange(n, dtype=np.int64),
        "timestamp": pd.to_datetime(start + 60_000 * np.arange(n), unit="ms"),
        "open": ohlc[:, 0], "high": ohlc[:, 1], "low": ohlc[:, 2], "close": ohlc[:, 3],
        "volume": np.tile(base["volume"].to_numpy(), reps)[:n],
    })


def best_of(repeats: int, fn: Callable[[], object]) -> float:
    """Fastest wall time of ``repeats`` runs, in seconds (least disturbed by the other core's load)."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def run_on_local_backend(jobs: Sequence[Any], workers: int) -> list[Any]:
    """Run :class:`trainer.jobs.runner.Job` s on the local job backend, ``workers`` at a time,
    printing each as it ends; their results in the order they ended. A failed job stops the run."""
    from trainer.jobs.backends import LocalBackend
    from trainer.jobs.runner import JobOutcome, run_jobs

    results: list[Any] = []

    def on_finish(index: int, outcome: JobOutcome) -> None:
        if not outcome.ok:
            raise RuntimeError(f"{outcome.key}: {outcome.error}")
        results.append(outcome.result)
        print(f"  done: {outcome.key}", flush=True)

    backend = LocalBackend(workers)
    try:
        run_jobs(backend, lambda i: jobs[i] if i < len(jobs) else None, on_finish)
    finally:
        backend.close()
    return results
