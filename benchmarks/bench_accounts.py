"""Many paper accounts in one daemon, and what the daemon costs a small server.

1. **10 accounts x 50 symbols closing in the same minute** (local Bybit replay, real candle
   shapes, ten PPO accounts served from their exported policies): every symbol's decisions
   (all ten accounts, one transaction) from the candle message's arrival to the commit,
   p50/p99/max, and per minute the first arrival to the 500th decision committed.
   Baseline, same run: one account.
2. **The per-candle cost of the 10th account** next to the first: the engine (features once,
   then each account) and the ledger transaction of one candle with 1..10 accounts, on
   real candles, as a ratio to one account.
3. **Footprint**: the resident memory of ``shadow run`` (a process of its own, against a
   replay-server process) after 1,500 decisions: one PPO account served as before (SB3,
   torch imported), one served from its export (numpy only), ten served from their exports.
4. **A retrain child for the default budget** (``[retrain]`` and ``[train]`` defaults: 50,000
   PPO timesteps, 4 envs, the default limits) on 20,000 real candles: its peak resident
   memory, and the peak of its address space (what ``[retrain] memory_limit_mb`` limits).

Run: ``python -m benchmarks.bench_accounts`` (about 5 minutes on 2 cores).
"""

from __future__ import annotations

import asyncio
import logging
import os
import resource
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks.bench_daemon import percentile, replay
from benchmarks.common import REPO, real_candles
from bot.bybit.sequencer import FeedCandle
from bot.daemon import Daemon
from bot.engine import ServingStrategy, SymbolEngine
from config.accounts import AccountSettings
from config.settings import EnvSettings, LedgerSettings, RetrainSettings, RiskSettings, Settings
from env.crypto_trading_env import CryptoTradingEnv
from env.types import Candle
from state.ledger import Ledger
from strategies.model_metadata import ModelMetadata
from strategies.ppo import write_policy
from strategies.specs import build_strategy

HISTORY = 1_000
ACCOUNTS = 10
SYMBOLS = 50


def ppo_models(folder: Path, candles: pd.DataFrame, n: int, *, exported: bool = True) -> list[Path]:
    """``n`` default PPO policies (untrained, each its own seed) saved with Shadow metadata,
    their networks exported beside them unless ``exported`` is off."""
    import torch
    from stable_baselines3 import PPO

    torch.set_num_threads(1)
    env = CryptoTradingEnv(candles.iloc[:2000])
    paths = []
    for seed in range(n):
        model = PPO("MlpPolicy", env, seed=seed, device="cpu")
        path = folder / f"ppo{seed}{'' if exported else '-sb3'}.zip"
        model.save(path)
        ModelMetadata.for_current_code(lookback_window=20, env=EnvSettings().model_dump(mode="json"), symbol="BTCUSDT",
                                       timeframe="1m", data_range={}, hyperparameters={}, seed=seed).save_beside(path)
        if exported:
            write_policy(model.policy, path)
        paths.append(path)
    return paths


# --------------------------------------------------------------------------- 1. latency
async def same_minute(frame: pd.DataFrame, folder: Path, models: list[Path], n_accounts: int) -> tuple[list[float],
                                                                                                   list[float]]:
    """Per symbol-candle arrival -> commit (ms), and per minute first arrival -> last commit (ms)."""
    symbols = [f"S{i:02d}USDT" for i in range(SYMBOLS)]
    arrivals: dict[int, list[int]] = {}
    commits: dict[int, list[int]] = {}

    def record(daemon: Daemon, symbol: str, item: FeedCandle) -> None:
        t = item.candle.open_time_ms
        arrivals.setdefault(t, []).append(item.received_ns)
        commits.setdefault(t, []).append(time.perf_counter_ns())

    accounts = tuple(AccountSettings(name=f"ppo{i}", strategy=f"ppo:{models[i]}") for i in range(n_accounts))
    daemon = await replay(frame, symbols, folder / f"minute-{n_accounts}.sqlite", "flat", speed=4,
                          on_decision=record, accounts=accounts)
    minutes = [(max(commits[t]) - min(arrivals[t])) / 1e6 for t in commits if len(commits[t]) == SYMBOLS]
    return list(daemon.report.latencies_ms), minutes


# ------------------------------------------------------------------------ 2. per account
async def per_candle_cost(frame: pd.DataFrame, folder: Path, models: list[Path], n_accounts: int,
                          n_candles: int = 1500) -> tuple[float, float]:
    """Median engine and ledger microseconds per candle with ``n_accounts`` PPO accounts (the
    median: a machine shared with other work adds outliers, not a shift)."""
    engine = SymbolEngine("BTCUSDT", "1m", 20)
    for i in range(n_accounts):
        strategy = build_strategy(f"ppo:{models[i]}", lookback_window=20)
        engine.add_account(f"ppo{i}", EnvSettings(), RiskSettings(), ServingStrategy(strategy, "ppo", f"v{i}"))
    engine.warm(frame.iloc[:HISTORY])
    candles = [Candle("BTCUSDT", "1m", int(r.open_time_ms), r.open, r.high, r.low, r.close, r.volume)
               for r in frame.iloc[HISTORY:HISTORY + n_candles].itertuples(index=False)]
    engine_ns, ledger_ns = [], []
    db = folder / f"cost-{n_accounts}.sqlite"
    db.unlink(missing_ok=True)
    async with await Ledger.open(db) as ledger:
        for candle in candles:
            start = time.perf_counter_ns()
            output = engine.on_candle(candle, decided_ms=candle.open_time_ms)
            middle = time.perf_counter_ns()
            await ledger.record_decisions(candle, output.records)
            engine_ns.append(middle - start)
            ledger_ns.append(time.perf_counter_ns() - middle)
    return float(np.median(engine_ns)) / 1e3, float(np.median(ledger_ns)) / 1e3


# --------------------------------------------------------------------------- 3. footprint
def daemon_rss(folder: Path, frame: pd.DataFrame, models: list[Path], name: str, decisions: int = 1500) -> tuple[
        float, float, bool]:
    """``shadow run`` with one account per model: (resident MB, peak resident MB, torch mapped)
    once the ledger holds ``decisions`` decisions per account."""
    from env.candles import candles_to_seed_csv
    from tests.bot.local_http import free_port, wait_until_answering

    data = folder / f"{name}.csv"
    candles_to_seed_csv(frame, data)
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "bot", "replay-server", "--data", str(data), "--symbol", "BTCUSDT",
                               "--speed", "300", "--port", str(port), "--history", str(HISTORY)],
                              cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    db = folder / f"{name}.sqlite"
    toml = folder / f"{name}.toml"
    toml.write_text(f'[exchange]\nws_url = "ws://127.0.0.1:{port}/v5/public/linear"\n'
                    f'rest_url = "http://127.0.0.1:{port}"\n[feed]\nsymbols = ["BTCUSDT"]\n'
                    f'[ledger]\ndb_path = "{db}"\n[daemon]\nwarmup_candles = {HISTORY}\n')
    args = [arg for i, model in enumerate(models) for arg in ("--account", f"ppo{i}=ppo:{model}")]
    try:
        wait_until_answering(f"http://127.0.0.1:{port}/v5/market/time")
        daemon = subprocess.Popen([sys.executable, "-m", "bot", "run", "--config", str(toml), "--log-level", "WARNING",
                                   *args], cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 300
        while _count(db) < decisions * len(models) and time.monotonic() < deadline:
            time.sleep(0.5)
        status = Path(f"/proc/{daemon.pid}/status").read_text()
        torch = "torch" in Path(f"/proc/{daemon.pid}/maps").read_text()
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(timeout=60)
    finally:
        server.kill()
        server.wait()
    return _status_mb(status, "VmRSS"), _status_mb(status, "VmHWM"), torch


def _count(db: Path) -> int:
    try:
        with sqlite3.connect(db) as conn:
            return int(conn.execute("SELECT count(*) FROM decisions").fetchone()[0])
    except sqlite3.Error:
        return 0


def _status_mb(status: str, key: str) -> float:
    line = next(line for line in status.splitlines() if line.startswith(key + ":"))
    return int(line.split()[1]) / 1024


# ------------------------------------------------------------------------- 4. retrain child
async def retrain_child_peak(folder: Path, candles: pd.DataFrame) -> tuple[str, float, float, float]:
    """One retrain with the default budget: (its outcome, its child's peak resident MB, the
    peak of its address space in MB, seconds). Must run before this process has waited for
    any other child (the resident peak is the largest of all of them)."""
    from trainer.retrain.runner import run_retrain

    db = folder / "retrain.sqlite"
    symbol_candles = [Candle("BTCUSDT", "1m", int(r.open_time_ms), r.open, r.high, r.low, r.close, r.volume)
                      for r in candles.itertuples(index=False)]
    settings = Settings(ledger=LedgerSettings(db_path=db), retrain=RetrainSettings(registry_dir=folder / "registry"))
    address_space = [0.0]
    async with await Ledger.open(db) as ledger:
        await ledger.store_candles(symbol_candles)
        started = time.perf_counter()
        watch = asyncio.create_task(_watch_children(address_space))
        outcome = await run_retrain(ledger, settings, ["BTCUSDT"])
        watch.cancel()
    seconds = time.perf_counter() - started
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return f"{outcome.status} ({outcome.reason[:60]}...)", peak_mb, address_space[0], seconds


async def _watch_children(peak: list[float]) -> None:
    """Keep the largest VmPeak of this process's children (the retrain child) in ``peak[0]``."""
    while True:
        peak[0] = max(peak[0], await asyncio.to_thread(_children_vm_peak, os.getpid()))
        await asyncio.sleep(0.5)


def _children_vm_peak(pid: int) -> float:
    peaks = [0.0]
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            text = status.read_text()
        except OSError:
            continue
        if f"\nPPid:\t{pid}\n" in text:
            peaks.append(_status_mb(text, "VmPeak"))
    return max(peaks)


async def main() -> None:
    logging.basicConfig(level=logging.WARNING)
    frame = real_candles(HISTORY + 2_500)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        outcome, peak, address_space, seconds = await retrain_child_peak(folder, real_candles(20_000))
        print(f"retrain child, default budget (50,000 timesteps, 4 envs) on 20,000 candles: {outcome} in "
              f"{seconds:.0f} s; peak RSS {peak:.0f} MB (target: fits in 1 GB), peak address space "
              f"{address_space:.0f} MB (what [retrain] memory_limit_mb limits; default 4096)")

        models = ppo_models(folder, frame, ACCOUNTS)
        (sb3_model,) = ppo_models(folder, frame, 1, exported=False)
        today = daemon_rss(folder, frame, [sb3_model], "today")
        one = daemon_rss(folder, frame, models[:1], "one")
        ten = daemon_rss(folder, frame, models, "ten")
        for label, (rss, hwm, torch) in (("1 PPO account through SB3 (today)", today),
                                         ("1 PPO account from its export", one),
                                         ("10 PPO accounts from their exports", ten)):
            print(f"shadow run, {label}: RSS {rss:.0f} MB (peak {hwm:.0f} MB), torch loaded: {torch}")
        print(f"footprint: 1 exported account {one[0] / today[0]:.2f}x today's (target <= 300 MB), "
              f"10 accounts {ten[0] / one[0]:.2f}x one (target <= 1.3x)")

        rounds: dict[int, list[tuple[float, float]]] = {n: [] for n in (1, 5, 9, 10)}
        for _ in range(3):  # interleaved, the best of three: the machine's other work shifts whole runs
            for n in rounds:
                rounds[n].append(await per_candle_cost(frame, folder, models, n))
        costs = {n: min(runs, key=sum) for n, runs in rounds.items()}
        for n, (engine_us, ledger_us) in costs.items():
            print(f"{n:2d} account(s): engine {engine_us:6.1f} us + ledger transaction {ledger_us:6.1f} us per candle "
                  f"(median)")
        first = sum(costs[1])
        each = (sum(costs[10]) - first) / 9
        tenth = sum(costs[10]) - sum(costs[9])
        print(f"each account after the first adds {each:.1f} us per candle on average ({each / first:.2f}x the "
              f"{first:.1f} us of the first: features, candle and transaction are paid once); the 10th adds "
              f"{tenth:.1f} us ({tenth / first:.2f}x); 10 accounts cost {sum(costs[10]) / first:.2f}x one")

        for n in (1, ACCOUNTS):
            latencies, minutes = await same_minute(frame.iloc[:HISTORY + 300], folder, models, n)
            print(f"{n:2d} account(s) x {SYMBOLS} symbols: arrival -> all of a symbol's decisions committed "
                  f"p50 {percentile(latencies, 50):.1f} ms, p99 {percentile(latencies, 99):.1f} ms, "
                  f"max {max(latencies):.1f} ms; first arrival -> all {n * SYMBOLS} decisions of the minute "
                  f"p50 {percentile(minutes, 50):.1f} ms, p99 {percentile(minutes, 99):.1f} ms "
                  f"({len(minutes)} minutes; target: p99 within 250 ms)")


if __name__ == "__main__":
    asyncio.run(main())
