"""Child process of the crash-safety test: an engine that records a deterministic decision
stream and, like the live engine after a restart, restores its portfolio from the ledger
and carries on after the last recorded candle. Prints ``ready`` once it starts writing.

Usage: ``python tests/state/crash_writer.py LEDGER N_CANDLES``
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from config.accounts import DEFAULT_ACCOUNT
from env.candles import load_candles
from env.portfolio import Portfolio, PortfolioConfig
from state.ledger import Ledger
from state.replay import replay_decisions

SAMPLE = Path(__file__).resolve().parents[2] / "data" / "sample" / "btcusdt_1m_2023-03.csv.gz"
SEED = 5


def new_portfolio() -> Portfolio:
    return Portfolio(PortfolioConfig(initial_balance=1000.0, commission=0.00055, slippage_bps=2.0))


def candles(n: int):
    return load_candles(SAMPLE).iloc[:n].reset_index(drop=True)


async def main(path: str, n: int) -> None:
    frame = candles(n)
    async with await Ledger.open(path) as ledger:
        portfolio, resume_after_ms = new_portfolio(), None
        point = (await ledger.resume_points()).get((DEFAULT_ACCOUNT, "BTCUSDT"))
        if point is not None:
            portfolio.restore(point.state)
            resume_after_ms = point.open_time_ms
        print("ready", flush=True)
        for record, _ in replay_decisions(frame, seed=SEED, portfolio=portfolio, resume_after_ms=resume_after_ms):
            assert await ledger.record_decision(record)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2])))
