"""Decision commit latency (p50/p99) and sustained decisions/second of the ledger.

Compares, in one run, on the same real-candle decision stream and the same SQL
(``state.decision_sql``), one transaction per decision:

- ``ledger WAL+NORMAL``: the shipped writer (aiosqlite, WAL, synchronous=NORMAL);
- ``ledger WAL+FULL``: the same with an fsync per commit ([ledger] synchronous = "FULL");
- ``sqlite3 WAL+NORMAL``: plain synchronous sqlite3 with the shipped pragmas (isolates
  aiosqlite's thread hand-offs);
- ``sqlite3 default`` (the baseline): plain synchronous sqlite3 as it comes, rollback
  journal and synchronous=FULL (foreign keys on, as in every case).

Usage: ``python -m benchmarks.bench_ledger [--decisions 3000] [--rounds 3] [--dir DIR]``
(the directory should be on the disk the ledger will live on: fsync cost is the point).
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from benchmarks.common import REPO, real_candles
from state.database import writer_pragmas
from state.ledger import Ledger
from state.migrations import migrate
from state.records import DecisionRecord
from state.replay import replay_decisions, write_decision


def write_sync(conn: sqlite3.Connection, record: DecisionRecord) -> None:
    """The baseline writer: the ledger's statements through plain sqlite3."""
    conn.execute("BEGIN IMMEDIATE")
    write_decision(conn, record)
    conn.execute("COMMIT")


def run_sync(path: Path, records: list[DecisionRecord], *, wal: bool) -> list[float]:
    conn = sqlite3.connect(path, isolation_level=None)
    if wal:
        conn.execute("PRAGMA journal_mode = WAL")
    migrate(conn, path)
    for pragma in writer_pragmas("NORMAL" if wal else "FULL"):
        conn.execute(pragma)
    latencies = []
    for record in records:
        start = time.perf_counter()
        write_sync(conn, record)
        latencies.append(time.perf_counter() - start)
    conn.close()
    return latencies


async def run_ledger(path: Path, records: list[DecisionRecord], synchronous: str) -> list[float]:
    latencies = []
    async with await Ledger.open(path, synchronous=synchronous) as ledger:  # type: ignore[arg-type]
        for record in records:
            start = time.perf_counter()
            await ledger.record_decision(record)
            latencies.append(time.perf_counter() - start)
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--decisions", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=3, help="cases run interleaved; medians are reported")
    parser.add_argument("--dir", type=Path, default=REPO / "benchmarks" / "out" / "ledger")
    args = parser.parse_args()
    records = [r for r, _ in replay_decisions(real_candles(args.decisions), seed=1)]
    n_fills = sum(len(r.fills) for r in records)
    shutil.rmtree(args.dir, ignore_errors=True)
    args.dir.mkdir(parents=True)

    cases: dict[str, Callable[[Path], list[float]]] = {
        "ledger WAL+NORMAL": lambda p: asyncio.run(run_ledger(p, records, "NORMAL")),
        "ledger WAL+FULL": lambda p: asyncio.run(run_ledger(p, records, "FULL")),
        "sqlite3 WAL+NORMAL": lambda p: run_sync(p, records, wal=True),
        "sqlite3 default (baseline)": lambda p: run_sync(p, records, wal=False),
    }
    print(f"{len(records)} decisions ({n_fills} fills) from real BTCUSDT 1m candles, one transaction each, "
          f"files in {args.dir}; median of {args.rounds} interleaved rounds")
    rounds: dict[str, list[tuple[float, float, float]]] = {name: [] for name in cases}
    for i in range(args.rounds):
        for name, run in cases.items():
            path = args.dir / f"{name.split()[0]}_{name.split()[1].replace('+', '_')}_{i}.sqlite"
            start = time.perf_counter()
            latencies = np.array(run(path)) * 1000
            rate = len(records) / (time.perf_counter() - start)
            rounds[name].append((np.percentile(latencies, 50), np.percentile(latencies, 99), rate))
    results = {name: tuple(np.median(np.array(values), axis=0)) for name, values in rounds.items()}
    print(f"{'writer':28} {'p50 ms':>8} {'p99 ms':>8} {'decisions/s':>12}")
    for name, (p50, p99, rate) in results.items():
        print(f"{name:28} {p50:8.3f} {p99:8.3f} {rate:12,.0f}")
    base = results["sqlite3 default (baseline)"]
    shipped = results["ledger WAL+NORMAL"]
    print(f"shipped ledger vs baseline: {shipped[2] / base[2]:.1f}x decisions/s, "
          f"p50 {base[0] / shipped[0]:.1f}x lower, p99 {base[1] / shipped[1]:.1f}x lower")


if __name__ == "__main__":
    main()
