"""A stream of realistic decisions over real candles, for tests, the crash-safety harness,
the benchmarks and the dashboard's screenshots.

It drives the real money step (:class:`~env.execution.Account` over a
:class:`~env.portfolio.Portfolio`, settling the candles' ``funding_rate`` column when they
have one) with seeded random actions (a trader who mostly holds)
and builds each observation with the real features and
:func:`~env.observation.build_observation` (one-candle window), so the records carry
the same fills, trades and float64 account values a live engine would hand the ledger.
:func:`write_records` stores such a stream with the ledger's own statements, many
decisions per transaction, to build large ledgers quickly.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import pandas as pd

from env.execution import Account
from env.features import compute_features
from env.funding import FUNDING_RATE_COLUMN, FundingRate, funding_due_by_candle
from env.intervals import infer_grid
from env.observation import build_observation
from env.portfolio import Portfolio, PortfolioConfig
from env.types import Action, Candle
from state.candle_store import INSERT_CANDLE, candle_params
from state.database import prepare_for_writing, writer_pragmas
from state.decision_sql import INSERT_DECISION, after_decision, decision_params
from state.records import DecisionRecord


def replay_decisions(
    candles: pd.DataFrame,
    *,
    symbol: str = "BTCUSDT",
    interval: str = "1m",
    seed: int = 0,
    trade_probability: float = 0.06,
    portfolio: Portfolio | None = None,
    model_versions: tuple[str, ...] = ("ppo-0001",),
    run_id: int | None = None,
    resume_after_ms: int | None = None,
) -> Iterator[tuple[DecisionRecord, Portfolio]]:
    """Yield ``(record, portfolio after the decision)`` for every row of ``candles``
    (``env.candles`` layout).

    Args:
        trade_probability: chance that a decision is BUY, SELL or CLOSE (split evenly).
        portfolio: continue this account (e.g. one restored from the ledger).
        model_versions: the model in service switches evenly through these over the run.
        resume_after_ms: skip candles up to this open time, as an engine restarted from
            :meth:`state.ledger.Ledger.resume_points` does (pass the restored ``portfolio``);
            the decisions after it are the same as in an uninterrupted run.
    """
    portfolio = portfolio or Portfolio(PortfolioConfig(initial_balance=1000.0, commission=0.00055, slippage_bps=2.0))
    account = Account(portfolio)
    rng = np.random.default_rng(seed)
    p_trade = trade_probability / 3
    actions = rng.choice(len(Action), size=len(candles), p=[1 - trade_probability, p_trade, p_trade, p_trade])
    latencies = rng.gamma(2.0, 1.5, size=len(candles))
    features = compute_features(candles).astype(np.float32)
    times = candles["open_time_ms"].to_numpy()
    candle_grid = infer_grid(times)
    funding: list[FundingRate | None] = (funding_due_by_candle(times, candles[FUNDING_RATE_COLUMN].to_numpy())
                                         if FUNDING_RATE_COLUMN in candles else [None] * len(candles))
    rows = candles[["open_time_ms", "open", "high", "low", "close", "volume"]].itertuples(index=False)
    for i, (open_time_ms, o, h, low, c, v) in enumerate(rows):
        if resume_after_ms is not None and open_time_ms <= resume_after_ms:
            continue
        candle = Candle(symbol, interval, int(open_time_ms), float(o), float(h), float(low), float(c), float(v))
        account.mark(candle.close, candle.open_time_ms, funding[i])
        obs = build_observation(features[i : i + 1], portfolio)
        record = DecisionRecord.from_execution(
            candle, obs, account.execute(int(actions[i])), account, strategy="ppo",
            model_version=model_versions[i * len(model_versions) // len(candles)],
            latency_ms=float(latencies[i]), decided_ms=candle_grid.close_ms(candle.open_time_ms) + int(latencies[i]),
            run_id=run_id,
        )
        yield record, portfolio


def write_decision(conn: sqlite3.Connection, record: DecisionRecord) -> bool:
    """One decision through the ledger's statements on a plain ``sqlite3`` connection, inside
    the caller's transaction (:meth:`state.ledger.Ledger.record_decision` without the async
    writer). Returns ``False`` when the candle was already decided."""
    conn.execute(INSERT_CANDLE, candle_params(record.candle))
    row = conn.execute(INSERT_DECISION, decision_params(record)).fetchone()
    if row is None:
        return False
    for sql, params in after_decision(record, row[0]):
        conn.execute(sql, params)
    return True


def write_records(path: Path, records: Iterable[DecisionRecord], *, per_transaction: int = 5000) -> int:
    """Create (or extend) the ledger at ``path`` with ``records``, ``per_transaction``
    decisions per commit. For building test and benchmark ledgers fast; the daemon commits
    one decision per transaction. Returns how many decisions were new."""
    prepare_for_writing(path, lock_timeout_s=5.0)
    conn = sqlite3.connect(path, isolation_level=None)
    written = 0
    try:
        for pragma in writer_pragmas("NORMAL"):
            conn.execute(pragma)
        conn.execute("BEGIN IMMEDIATE")
        for i, record in enumerate(records, 1):
            written += write_decision(conn, record)
            if i % per_transaction == 0:
                conn.execute("COMMIT")
                conn.execute("BEGIN IMMEDIATE")
        conn.execute("COMMIT")
    finally:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        conn.close()
    return written
