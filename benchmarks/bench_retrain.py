"""Decision latency while retraining runs, and how fast a promoted model starts deciding.

1. One replay of real BTCUSDT 1m candles through the daemon (local Bybit replay server,
   PPO model v0001 serving), with ``[retrain] every_candles`` set so that real PPO
   retrains (child processes, one torch thread, niceness 10) run for about half of it.
   Each decision's latency (candle message arrival -> decision committed) is filed under
   "a retrain was running" or "none was", so both populations come from the same replay,
   the same data and the same moment of machine load. Baseline: the no-retrain latencies.
2. Promotion to first decision, in a second replay on the rising real candles of
   2023-03-12 (where the retrain's prepared always-BUY candidate wins the gate):
   verdict committed -> model verified and loaded -> swapped -> first decision by it; and
   the same for ``shadow models promote`` from outside (which waits for the poll).

Run: ``python -m benchmarks.bench_retrain`` (about 2.5 minutes on 2 cores).
"""

from __future__ import annotations

import asyncio
import logging
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.bench_daemon import replay, untrained_model
from benchmarks.common import real_candles
from bot.commands.models import promote_version
from bot.daemon import Daemon
from bot.engine import SymbolEngine
from bot.retrain_scheduler import RetrainScheduler
from config.settings import RetrainSettings, TrainSettings
from env.types import Action
from state.ledger import Ledger
from tests.retrain_models import constant_model
from tests.trainer.retrain.retrain_fakes import MODEL_VARIABLE
from trainer.models.store import publish_model

TRAIN = TrainSettings(n_envs=4, n_steps=512)


def p(values: list[float], q: float) -> float:
    return float(np.percentile(values, q))


def record_decisions(log: list[tuple[int, str | None]]) -> None:
    """Log ``(perf_counter_ns, model_version)`` of every decision the engines take."""
    on_candle = SymbolEngine.on_candle

    def logged(self: SymbolEngine, *args: object, **kwargs: object):
        output = on_candle(self, *args, **kwargs)
        log.extend((time.perf_counter_ns(), record.model_version) for record in output.records)
        return output

    SymbolEngine.on_candle = logged


async def latency_under_retraining(folder: Path) -> None:
    history, live = 3_000, 12_000
    frame = real_candles(history + live)
    db = folder / "load.sqlite"
    async with await Ledger.open(db) as ledger:
        await publish_model(ledger, folder / "registry", untrained_model(folder, frame), symbol="BTCUSDT",
                            interval="1m", status="promoted")
    retrain = RetrainSettings(enabled=True, every_candles=1_500, timesteps=20_000, registry_dir=folder / "registry",
                              cold_start=False)
    samples: list[tuple[float, bool]] = []

    def record(daemon: Daemon, symbol: str, item) -> None:
        samples.append(((time.perf_counter_ns() - item.received_ns) / 1e6, daemon.retrainer.running))

    daemon = await replay(frame, ["BTCUSDT"], db, "registry", 100, record, history=history, train=TRAIN,
                          retrain=retrain)
    busy = [ms for ms, running in samples if running]
    idle = [ms for ms, running in samples if not running]
    outcomes = daemon.retrainer.outcomes
    seconds = [o.metrics.get("seconds", 0.0) for o in outcomes]
    print(f"replay: {len(samples)} decisions at 100 candles/s; {len(outcomes)} retrains finished "
          f"({', '.join(o.status for o in outcomes)}), {np.mean(seconds):.1f} s each on average; "
          f"{len(busy)} decisions taken while one ran")
    print(f"arrival -> committed, no retrain running (baseline): p50 {p(idle, 50):.2f} ms, p99 {p(idle, 99):.2f} ms, "
          f"max {max(idle):.1f} ms")
    print(f"arrival -> committed, a retrain running:            p50 {p(busy, 50):.2f} ms, p99 {p(busy, 99):.2f} ms, "
          f"max {max(busy):.1f} ms")
    print(f"p99 ratio running / not running: {p(busy, 99) / p(idle, 99):.2f}x (target <= 2)")


async def promotion_to_first_decision(folder: Path) -> None:
    frame = real_candles(20_000).iloc[16_750:18_000].reset_index(drop=True)  # rises before the first retrain
    db = folder / "swap.sqlite"
    untrained = untrained_model(folder, frame)
    close, buy = (constant_model(untrained, a, folder / f"{a.name}.zip") for a in (Action.CLOSE, Action.BUY))
    async with await Ledger.open(db) as ledger:
        await publish_model(ledger, folder / "reg2", close, symbol="BTCUSDT", interval="1m", status="promoted")
    os.environ[MODEL_VARIABLE] = str(buy)
    RetrainScheduler.trainer_target = "tests.trainer.retrain.retrain_fakes:copies_model"
    retrain = RetrainSettings(enabled=True, every_candles=50, holdout_candles=60, min_train_candles=50,
                              registry_dir=folder / "reg2", cold_start=False, poll_seconds=1.0)
    decided: list[tuple[int, str | None]] = []
    record_decisions(decided)
    rollback: dict[str, int] = {}

    def story(daemon: Daemon, symbol: str, item) -> bool:
        version = decided[-1][1]
        if version == "v0002" and "asked" not in rollback and len([v for _, v in decided if v == "v0002"]) > 20:
            rollback["asked"] = time.perf_counter_ns()
            asyncio.ensure_future(promote_version(db, daemon.settings, "v0001")).add_done_callback(
                lambda _: rollback.setdefault("committed", time.perf_counter_ns()))
        return "committed" in rollback and version == "v0001"

    daemon = await replay(frame, ["BTCUSDT"], db, "registry", 100, story, history=300, retrain=retrain)
    outcome = next(o for o in daemon.retrainer.outcomes if o.promoted)
    swaps: dict[str, int] = {}
    for swap in daemon.retrainer.swapper.swaps:
        swaps.setdefault(swap.version, swap.swapped_ns)
    first_v2 = next(t for t, v in decided if v == "v0002")
    back = next(t for t, v in decided if v == "v0001" and t > rollback["committed"])
    print(f"retrain promotion: verdict committed -> verified, loaded and swapped in "
          f"{(swaps['v0002'] - outcome.finished_ns) / 1e6:.1f} ms; first decision by the new model "
          f"{(first_v2 - outcome.finished_ns) / 1e6:.1f} ms after the verdict (the rest is the wait for the next "
          "candle close: 10 ms in this replay, up to 60 s live)")
    print("rollback with `shadow models promote`: committed -> swapped "
          f"{(swaps['v0001'] - rollback['committed']) / 1e6:.0f} ms (the daemon polls every poll_seconds = 1 s) "
          "-> first decision by it "
          f"{(back - rollback['committed']) / 1e6:.0f} ms after the commit")


async def main() -> None:
    logging.basicConfig(level=logging.ERROR)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        await latency_under_retraining(folder)
        await promotion_to_first_decision(folder)


if __name__ == "__main__":
    asyncio.run(main())
