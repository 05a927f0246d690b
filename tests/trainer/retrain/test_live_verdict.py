"""The live verdict: the challenger and the incumbent are scored from the same start on the
trial's candles (the incumbent's equity at the close the challenger joined), with the
ledger's own equity rows, and judged by the holdout's gate with the trial's metric and
margin; the verdict, the model's status and the run's outcome are one transaction."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bot.engine import ServingStrategy
from config.accounts import DEFAULT_ACCOUNT, challenger_name
from config.settings import EnvSettings, RiskSettings
from env.types import Candle
from state.database import connect_reader
from state.ledger import Ledger
from state.records import ModelEntry, ModelStatus
from strategies.specs import build_strategy
from tests.bot.engines import one_account_engine
from tests.conftest import PREFIX
from trainer.evaluation.metrics import compute_metrics
from trainer.retrain.live_verdict import judge_trial

CANDLES = 120
JOIN_AT = 600


async def trial_ledger(path: Path, frame: pd.DataFrame, incumbent: str, candidate: str, *, metric: str,
                       margin: float) -> None:
    """``incumbent`` trades from the first decision; after candle ``JOIN_AT`` the trial's
    challenger (``candidate``) joins for ``CANDLES`` candles; everything goes through the engine
    and the ledger as in the daemon. The registry holds v0001 (promoted) and v0002 (the candidate)."""
    engine = one_account_engine("BTCUSDT", EnvSettings(), RiskSettings(), ServingStrategy(build_strategy(incumbent),
                                                                                           incumbent))
    challenger = challenger_name("v0002")
    async with await Ledger.open(path) as ledger:
        for version, status in (("v0001", ModelStatus.PROMOTED), ("v0002", ModelStatus.CANDIDATE)):
            await ledger.registry.add_model(ModelEntry(version, f"/models/{version}.zip", "a" * 64, 1, status=status,
                                                       symbol="BTCUSDT", interval="1m"))
        retrain_id = await ledger.registry.start_retrain(started_ms=1)
        trial = await ledger.trials.open_trial(
            retrain_id=retrain_id, at_ms=2, reason="candidate v0002 beats both; holdout sharpe: ...", metrics={},
            candidate_version="v0002", challenger_account=challenger, incumbent_account=DEFAULT_ACCOUNT,
            symbols=["BTCUSDT"], candles=CANDLES, metric=metric, margin=margin)
        for i, r in enumerate(frame.itertuples(index=False)):
            if i == JOIN_AT:
                engine.join(challenger, EnvSettings(), RiskSettings(), ServingStrategy(build_strategy(candidate),
                                                                                       candidate),
                            equity_of=DEFAULT_ACCOUNT)
            candle = Candle("BTCUSDT", "1m", int(r.open_time_ms), r.open, r.high, r.low, r.close, r.volume)
            records = engine.on_candle(candle, decided_ms=candle.open_time_ms).records
            if records:
                await ledger.record_decisions(candle, list(records))
            if sum(rec.account == challenger for rec in records) and i == JOIN_AT + CANDLES - 1:
                engine.remove_account(challenger)
    return trial


def _equity(db: Path, account: str) -> list[float]:
    with sqlite3.connect(db) as conn:
        return [e for (e,) in conn.execute("SELECT equity FROM equity WHERE account = ? ORDER BY open_time_ms",
                                           (account,))]


@pytest.mark.parametrize(("margin", "promoted"), [(0.0, True), (0.5, False)])
async def test_the_challenger_is_scored_from_the_incumbents_equity_and_judged_by_the_gate(
        tmp_path: Path, btc_candles: pd.DataFrame, margin: float, promoted: bool) -> None:
    frame = btc_candles.iloc[13000:13000 + JOIN_AT + CANDLES + 30].reset_index(drop=True)
    rising = frame["close"].iloc[JOIN_AT + CANDLES - 1] / frame["close"].iloc[JOIN_AT] - 1
    assert rising > 0.003  # buy & hold earns on these candles; flat earns nothing
    db = tmp_path / "shadow.sqlite"
    trial = await trial_ledger(db, frame, "flat", "buy_and_hold", metric="total_return", margin=margin)
    with closing(connect_reader(db)) as conn:
        verdict = judge_trial(conn, trial)
    challenger = _equity(db, trial.challenger_account)
    incumbent = _equity(db, DEFAULT_ACCOUNT)
    assert len(challenger) == CANDLES
    start = incumbent[JOIN_AT - PREFIX - 1]  # flat: the incumbent's equity never moved
    scores = verdict.metrics["scores"]
    assert scores["candidate"] == challenger[-1] / start - 1 == compute_metrics(
        np.array([start, *challenger]), np.zeros(CANDLES), [], 0.0, 60_000).total_return
    assert (scores["incumbent"], scores["flat"]) == (0.0, 0.0)
    assert verdict.promote is promoted
    assert f"live trial total_return: candidate {scores['candidate']:.4g}, incumbent account main 0, flat 0 " \
           f"(margin {margin:g})" in verdict.reason

    async with await Ledger.open(db) as ledger:
        await ledger.trials.finish(trial, promote=verdict.promote, reason=verdict.reason, metrics=verdict.metrics,
                                   at_ms=3)
    with sqlite3.connect(db) as conn:
        status, reason = conn.execute("SELECT status, reason FROM retrain_runs").fetchone()
        models = dict(conn.execute("SELECT version, status FROM models").fetchall())
        trial_status = conn.execute("SELECT status FROM live_trials").fetchone()[0]
    assert reason.startswith("candidate v0002 beats both; holdout sharpe") and f"; live: {verdict.reason}" in reason
    if promoted:
        assert (status, trial_status, models) == ("promoted", "promoted", {"v0001": "retired", "v0002": "promoted"})
    else:
        assert (status, trial_status, models) == ("rejected", "retired", {"v0001": "promoted", "v0002": "rejected"})


async def test_an_incumbent_that_holds_a_position_starts_level_with_its_challenger(
        tmp_path: Path, btc_candles: pd.DataFrame) -> None:
    """Both curves start at the incumbent's equity at the join close, not at its equity one
    candle earlier: a position held through that candle does not count for the trial."""
    frame = btc_candles.iloc[5000:5000 + JOIN_AT + CANDLES + 30].reset_index(drop=True)
    db = tmp_path / "shadow.sqlite"
    trial = await trial_ledger(db, frame, "buy_and_hold", "flat", metric="total_return", margin=0.0)
    with closing(connect_reader(db)) as conn:
        verdict = judge_trial(conn, trial)
    incumbent = _equity(db, DEFAULT_ACCOUNT)
    joined = JOIN_AT - PREFIX - 1  # the incumbent decides from candle PREFIX on: its decision at JOIN_AT - 1
    details = verdict.metrics["symbols"]["BTCUSDT"]
    assert details["start_equity"] == _equity(db, trial.challenger_account)[0]  # flat: it never moves
    assert details["start_equity"] != incumbent[joined]  # the incumbent held through the join candle
    assert verdict.metrics["scores"]["incumbent"] == incumbent[joined + CANDLES] / details["start_equity"] - 1
    assert verdict.metrics["scores"]["candidate"] == 0.0
