"""A realistic ledger built from real candles, for tests, benchmarks and the dashboard's
screenshots.

Decisions come from :func:`state.replay.replay_decisions` (the real portfolio, seeded
random actions), written with the ledger's own statements; the rest of a service's life
goes through the ledger's own API: two daemon sessions, a model registry whose first
model is promoted, a retrain whose candidate is rejected, one that is promoted, one that
fails, a rollback to the first model, one whose candidate passes the holdout and is retired
after its live trial, and a risk control firing. The decisions credit
the model that was serving at each candle.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import pandas as pd

from config.accounts import DEFAULT_ACCOUNT, challenger_name
from env.risk import RiskEvent, RiskEventKind
from state.ledger import Ledger
from state.records import DecisionRecord, ModelEntry
from state.replay import replay_decisions, write_records

FIRST, SECOND = "ppo-0001", "ppo-0003"
TRIALLED = "ppo-0004"
MODELS = (FIRST, SECOND, FIRST)
"""The model serving each third of the candles: the first, the promoted candidate, the
first again after the rollback."""


@dataclass(frozen=True, slots=True)
class SampleSpan:
    """Where the sample's events fall (epoch ms): the decided span and its thirds."""

    first_ms: int
    last_ms: int

    def at(self, fraction: float) -> int:
        return self.first_ms + int((self.last_ms - self.first_ms) * fraction) // 60_000 * 60_000


def _decisions(frames: Mapping[str, pd.DataFrame], seed: int, trade_probability: float,
               risk_at: float, accounts: Sequence[str]) -> Iterator[DecisionRecord]:
    for j, account in enumerate(accounts):
        for i, (symbol, frame) in enumerate(frames.items()):
            yield from _account_decisions(frame, symbol, seed + i + 10 * j, trade_probability,
                                          int(len(frame) * risk_at) if i == 0 else None, account)


def _account_decisions(frame: pd.DataFrame, symbol: str, seed: int, trade_probability: float, risk_row: int | None,
                       account: str) -> Iterator[DecisionRecord]:
    for n, (record, _) in enumerate(replay_decisions(frame, symbol=symbol, seed=seed, account=account,
                                                     trade_probability=trade_probability, model_versions=MODELS)):
        if n == risk_row:
            event = RiskEvent(record.candle.open_time_ms, RiskEventKind.DAILY_LOSS,
                              "equity down 5.1% since the UTC day began (limit 5%): flat until the next day")
            yield replace(record, risk_events=(event,))
        else:
            yield record


async def build_sample_ledger(path: Path, frames: Mapping[str, pd.DataFrame], *, seed: int = 7,
                              trade_probability: float = 0.03, symbol_names: Mapping[str, str] | None = None,
                              strategy: str = "ppo", accounts: Sequence[str] = (DEFAULT_ACCOUNT,)) -> SampleSpan:
    """Write the sample ledger (see the module docstring) to ``path``.

    Args:
        frames: candles per symbol (:mod:`env.candles` layout), all of one interval.
        seed: the random trader's seed (symbol *i* uses ``seed + i``).
        trade_probability: share of decisions that trade.
        symbol_names: rename symbols in every table (e.g. to hostile text for escaping tests).
        strategy: the strategy name recorded on every decision.
        accounts: the paper accounts trading every symbol side by side (account *j* trades
            with ``seed + 10 j``; the risk control fires in each).

    Returns:
        The decided span (the first symbol's), where the events were placed.
    """
    first = next(iter(frames.values()))
    span = SampleSpan(int(first["open_time_ms"].iloc[0]), int(first["open_time_ms"].iloc[-1]))
    names = dict(symbol_names or {})
    records = (_renamed(r, names, strategy) for r in _decisions(frames, seed, trade_probability, 0.55, accounts))
    write_records(path, records)
    async with await Ledger.open(path) as ledger:
        registry, journal = ledger.registry, ledger.journal
        symbol = names.get(next(iter(frames)), next(iter(frames)))
        symbols = [names.get(s, s) for s in frames]
        run_1 = await journal.start_run(started_ms=span.first_ms, config_hash="sample", code_version="0.1.0",
                                        symbols=symbols)
        await journal.stop_run(run_1, stopped_ms=span.at(0.45), reason="stop requested")
        await journal.start_run(started_ms=span.at(0.45) + 60_000, config_hash="sample", code_version="0.1.0",
                                symbols=symbols)
        await _model(ledger, FIRST, None, span.first_ms - 3_600_000, symbol, holdout_sharpe=0.42)
        await registry.set_model_status(FIRST, "promoted", at_ms=span.first_ms - 3_000_000)
        await _retrain(ledger, span.at(0.2), "ppo-0002", "rejected", symbol, (-1.35, 0.42, 0.0),
                       "did not beat the incumbent ppo-0001 on sharpe (-1.35 vs 0.42, margin 0)")
        await _retrain(ledger, span.at(1 / 3) - 600_000, SECOND, "promoted", symbol, (0.88, 0.42, 0.0),
                       "beat the incumbent ppo-0001 (0.88 vs 0.42) and flat (0) on sharpe")
        await _retrain(ledger, span.at(0.5), None, "failed", symbol, None,
                       "the trainer was killed after time_limit_s (1800 s)")
        await registry.set_model_status(FIRST, "promoted", at_ms=span.at(2 / 3) - 60_000)  # the rollback
        await _live_trial(ledger, span, symbol, symbols)
    return span


def _renamed(record: DecisionRecord, names: dict[str, str], strategy: str) -> DecisionRecord:
    candle = record.candle
    symbol = names.get(candle.symbol, candle.symbol)
    return replace(record, candle=replace(candle, symbol=symbol), strategy=strategy)


async def _model(ledger: Ledger, version: str, parent: str | None, created_ms: int, symbol: str,
                 **metrics: float) -> None:
    await ledger.registry.add_model(ModelEntry(
        version=version, path=f"models/registry/{version}.zip", sha256=version[-1] * 64, created_ms=created_ms,
        parent_version=parent, symbol=symbol, interval="1m", metrics=metrics,
        hyperparameters={"learning_rate": 3e-4, "n_steps": 2048}))


async def _retrain(ledger: Ledger, started_ms: int, candidate: str | None, status: str, symbol: str,
                   scores: tuple[float, float, float] | None, reason: str) -> None:
    registry = ledger.registry
    retrain_id = await registry.start_retrain(started_ms=started_ms)
    finished_ms = started_ms + 540_000
    metrics = {}
    if candidate is not None and scores is not None:
        await _model(ledger, candidate, FIRST, finished_ms - 30_000, symbol, holdout_sharpe=scores[0])
        await registry.set_model_status(candidate, status, at_ms=finished_ms - 10_000)
        metrics = {"symbols": [symbol], "metric": "sharpe", "margin": 0.0,
                   "scores": {symbol: {"candidate": scores[0], "incumbent": scores[1], "flat": scores[2]}},
                   "holdout": {symbol: {"candles": 2880}}, "train_seconds": 512.4}
    await registry.finish_retrain(retrain_id, status=status, finished_ms=finished_ms,
                                  reason=f"candidate {candidate} {reason}" if candidate else reason,
                                  candidate_version=candidate, metrics=metrics)


async def _live_trial(ledger: Ledger, span: SampleSpan, symbol: str, symbols: Sequence[str]) -> None:
    """A candidate that passes the holdout, trades 240 candles as ``trial:ppo-0004`` beside
    the incumbent account, and is retired: it did not beat the incumbent live."""
    started_ms = span.at(0.75)
    retrain_id = await ledger.registry.start_retrain(started_ms=started_ms)
    await _model(ledger, TRIALLED, FIRST, started_ms + 510_000, symbol, holdout_sharpe=0.71)
    holdout = {"symbols": [symbol], "metric": "sharpe", "margin": 0.0,
               "scores": {symbol: {"candidate": 0.71, "incumbent": 0.42, "flat": 0.0}}}
    trial = await ledger.trials.open_trial(
        retrain_id=retrain_id, at_ms=started_ms + 540_000, reason=f"candidate {TRIALLED} passed the holdout",
        metrics=holdout, candidate_version=TRIALLED, challenger_account=challenger_name(TRIALLED),
        incumbent_account=DEFAULT_ACCOUNT, symbols=symbols, candles=240, metric="sharpe", margin=0.0)
    await ledger.trials.start(trial.trial_id, at_ms=started_ms + 600_000)
    live = {"metric": "sharpe", "margin": 0.0, "candles": 240,
            "scores": {"candidate": -0.35, "incumbent": 0.18, "flat": 0.0}}
    await ledger.trials.finish(trial, promote=False, at_ms=started_ms + 600_000 + 240 * 60_000, metrics=live,
                               reason="did not beat account main on sharpe over the live trial (-0.35 vs 0.18)")


def ledger_counts(path: Path) -> dict[str, int]:
    """Rows per table (a quick summary for scripts)."""
    with sqlite3.connect(path) as conn:
        return {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
                for t in ("decisions", "trades", "models", "retrain_runs", "model_promotions", "risk_events")}
