"""Retraining inside the running daemon, over the local Bybit replay on 127.0.0.1.

Real daemon, real websocket, real child processes (``python -m trainer.retrain``), real
ledger. The trainer itself is a stand-in (``tests.trainer.retrain.retrain_fakes``) so each test
knows what the gate will decide or how the child will fail; the holdout scoring, the
publishing, the verdict and the hot-swap are the product's own.

Data: real BTCUSDT 1m candles from 2023-03-12 15:10 UTC, where the 60 candles before the
first retrain rise (+2.4%): an always-BUY candidate beats flat and an always-CLOSE
incumbent on that holdout.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from itertools import groupby
from pathlib import Path

import pandas as pd
import pytest

from bot import hotswap
from bot.commands.models import promote_version
from bot.daemon import Daemon
from bot.replay.market import ReplayMarket, ReplaySeries
from bot.replay.server import ReplayServer
from bot.retrain_scheduler import RetrainScheduler
from config.accounts import DEFAULT_ACCOUNT
from config.settings import (
    DaemonSettings,
    FeedSettings,
    LedgerSettings,
    RetrainSettings,
    Settings,
)
from env.types import Action
from state.ledger import Ledger
from tests.bot.conftest import fast_exchange
from tests.retrain_models import constant_model
from tests.trainer.retrain.retrain_fakes import MODEL_VARIABLE
from trainer.models.store import publish_model

START = 16_750  # 2023-03-12 15:10 UTC in the bundled March sample
HISTORY = 300  # candles already closed when the replay starts (the daemon's warm-up, stored in the ledger)
LIVE = 3_000  # at most; each test stops the daemon once its story is told
SPEED = 100.0  # candles per second
EVERY = 50


@pytest.fixture(scope="module")
def frame(btc_candles: pd.DataFrame) -> pd.DataFrame:
    return btc_candles.iloc[START:START + HISTORY + LIVE].reset_index(drop=True)


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory, ppo_model: Path) -> dict[Action, Path]:
    folder = tmp_path_factory.mktemp("constant_models")
    return {a: constant_model(ppo_model, a, folder / f"{a.name.lower()}.zip") for a in (Action.BUY, Action.CLOSE)}


async def promote_first_model(db: Path, registry: Path, model: Path) -> None:
    async with await Ledger.open(db) as ledger:
        await publish_model(ledger, registry, model, symbol="BTCUSDT", interval="1m", status="promoted")


def settings_for(server: ReplayServer, db: Path, **retrain: object) -> Settings:
    values = dict(enabled=True, every_candles=EVERY, holdout_candles=60, min_train_candles=50, poll_seconds=0.2,
                  registry_dir=db.parent / "registry", time_limit_s=120.0, cold_start=False) | retrain
    return Settings(exchange=fast_exchange(server), feed=FeedSettings(symbols=["BTCUSDT"]),
                    ledger=LedgerSettings(db_path=db),
                    daemon=DaemonSettings(strategy="registry", warmup_candles=HISTORY, heartbeat_minutes=0.01),
                    retrain=RetrainSettings(**values))


async def run_story(frame: pd.DataFrame, db: Path, story: Callable[[Daemon, Settings], bool], *,
                    virtual_time: bool = False, **retrain: object) -> Daemon:
    """Replay ``frame`` through the daemon; ``story(daemon, settings)`` runs after every
    decision and returns True once the test has seen what it needs. ``virtual_time``: the
    daemon runs on the replay's clock instead of the wall clock."""
    market = ReplayMarket([ReplaySeries.from_frame("BTCUSDT", frame)], history=HISTORY)
    async with ReplayServer(market, speed=SPEED) as server:
        settings = settings_for(server, db, **retrain)
        daemon = Daemon(settings, clock=market.clock) if virtual_time else Daemon(settings)
        stop = asyncio.Event()
        daemon.listeners.append(lambda symbol, item, _: stop.set() if story(daemon, settings) else None)
        await asyncio.wait_for(daemon.run(stop), 240)  # an upper bound for a loaded machine
    assert stop.is_set(), "the replay ended before the story did"
    return daemon


def decisions(db: Path) -> list[tuple[int, int, str, str, int]]:
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT open_time_ms, action, strategy, model_version, decided_ms FROM decisions "
                            "ORDER BY decision_id").fetchall()


def assert_every_candle_decided_once(db: Path, frame: pd.DataFrame) -> list[tuple[int, int, str, str, int]]:
    rows = decisions(db)
    live = frame["open_time_ms"].iloc[HISTORY:HISTORY + len(rows)].tolist()
    assert [r[0] for r in rows] == live  # in order, none missed, none doubled
    return rows


def table(db: Path, sql: str) -> list[tuple]:
    with sqlite3.connect(db) as conn:
        return conn.execute(sql).fetchall()


def assert_stopped_cleanly(db: Path) -> None:
    """A retrain still running at shutdown was aborted and recorded; the session was closed."""
    assert table(db, "SELECT count(*) FROM retrain_runs WHERE status = 'running' OR finished_ms IS NULL") == [(0,)]
    assert table(db, "SELECT stop_reason FROM runs") == [("stop requested",)]


@pytest.fixture
def loads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every model version the daemon tried to load after start-up (the hot-swap's loads)."""
    seen: list[str] = []
    real = hotswap.load_registry_model

    def spy(entry, lookback_window, **market):
        seen.append(entry.version)
        return real(entry, lookback_window, **market)

    monkeypatch.setattr(hotswap, "load_registry_model", spy)
    return seen


async def test_promotion_swaps_between_candles_rejection_tamper_and_rollback_do_not(
        tmp_path: Path, frame: pd.DataFrame, models: dict[Action, Path], loads: list[str],
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """v0001 (always CLOSE) serves; the retrain at candle 50 yields v0002 (always BUY), which
    wins the rising holdout and is swapped in; the next retrain's v0003 (BUY again) only
    ties and is rejected, never loaded; v0003's file is then tampered and forced to
    promoted behind the CLI's back: refused; ``shadow models promote v0001`` rolls back."""
    db = tmp_path / "shadow.sqlite"
    await promote_first_model(db, tmp_path / "registry", models[Action.CLOSE])
    monkeypatch.setattr(RetrainScheduler, "trainer_target", "tests.trainer.retrain.retrain_fakes:copies_model")
    monkeypatch.setenv(MODEL_VARIABLE, str(models[Action.BUY]))
    state: dict[str, object] = {"phase": "retrain", "after": 0}

    def story(daemon: Daemon, settings: Settings) -> bool:
        serving = daemon.engines["BTCUSDT"].accounts[DEFAULT_ACCOUNT].serving.model_version
        outcomes = daemon.retrainer.outcomes
        if state["phase"] == "retrain" and len(outcomes) >= 2:
            state["loads_before_tamper"] = list(loads)
            v3 = Path(table(db, "SELECT path FROM models WHERE version = 'v0003'")[0][0])
            v3.write_bytes(v3.read_bytes() + b"tampered")
            with sqlite3.connect(db) as conn:  # promoted behind the CLI's back (it would refuse)
                conn.execute("UPDATE models SET status = 'retired' WHERE version = 'v0002'")
                conn.execute("UPDATE models SET status = 'promoted', promoted_ms = 1 WHERE version = 'v0003'")
            state["phase"] = "tampered"
        elif state["phase"] == "tampered" and "v0003" in loads:
            state["rollback"] = asyncio.ensure_future(promote_version(db, settings, "v0001"))
            state["phase"] = "rollback"
        elif state["phase"] == "rollback" and serving == "v0001":
            state["after"] = int(state["after"]) + 1
            return int(state["after"]) >= 30
        return False

    with caplog.at_level("INFO"):
        daemon = await run_story(frame, db, story)
    rows = assert_every_candle_decided_once(db, frame)
    assert [version for version, _ in groupby(r[3] for r in rows)] == ["v0001", "v0002", "v0001"]
    assert {r[2] for r in rows} == {"ppo"}
    assert {(r[3], r[1]) for r in rows} == {("v0001", Action.CLOSE), ("v0002", Action.BUY)}

    first, second = daemon.retrainer.outcomes[:2]
    assert (first.status, first.candidate.version, second.status, second.candidate.version) == (
        "promoted", "v0002", "rejected", "v0003")
    assert "does not beat incumbent v0002" in second.reason
    assert all(o.status != "promoted" for o in daemon.retrainer.outcomes[1:])
    # the first retrain trained and judged on candles up to the one that triggered it
    trigger_ms = int(frame["open_time_ms"].iloc[HISTORY + EVERY - 1])
    assert first.metrics["ranges"]["BTCUSDT"]["holdout"]["end_ms"] == trigger_ms
    promoted_ms = table(db, "SELECT promoted_ms FROM models WHERE version = 'v0002'")[0][0]
    v2 = [r for r in rows if r[3] == "v0002"]
    assert v2[0][0] > trigger_ms and min(r[4] for r in v2) >= promoted_ms
    # loaded: v0002 on promotion; the rejected v0003 never (until forced, then refused); v0001 on rollback
    assert state["loads_before_tamper"] == ["v0002"]
    assert loads == ["v0002", "v0003", "v0001"]
    assert ("refusing promoted model v0003: model v0003:" in caplog.text
            and "refusing to load a file that changed after it was published; still serving v0002" in caplog.text)
    assert "v0001 promoted for BTCUSDT 1m; v0003 retired" in state["rollback"].result()
    assert table(db, "SELECT version, status FROM models ORDER BY version")[:3] == [
        ("v0001", "promoted"), ("v0002", "retired"), ("v0003", "retired")]
    assert_stopped_cleanly(db)


async def test_each_trainer_failure_leaves_the_daemon_trading_with_the_old_model(
        tmp_path: Path, frame: pd.DataFrame, models: dict[Action, Path], loads: list[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Retrain k fails the k-th way: raises, SIGKILL, past the time limit, past the memory
    limit, a corrupt zip. Trading goes on with v0001 through all of them."""
    db = tmp_path / "shadow.sqlite"
    await promote_first_model(db, tmp_path / "registry", models[Action.CLOSE])
    monkeypatch.setattr(RetrainScheduler, "trainer_target", "tests.trainer.retrain.retrain_fakes:each_failure")
    monkeypatch.setenv(MODEL_VARIABLE, str(models[Action.BUY]))  # the corrupt zip's metadata
    after = []

    def story(daemon: Daemon, settings: Settings) -> bool:
        if len(daemon.retrainer.outcomes) >= 5:
            after.append(1)
        return len(after) >= 20

    daemon = await run_story(frame, db, story, every_candles=40, time_limit_s=15.0, memory_limit_mb=2048)
    rows = assert_every_candle_decided_once(db, frame)
    assert {r[3] for r in rows} == {"v0001"} and loads == []
    reasons = [(o.status, o.reason) for o in daemon.retrainer.outcomes[:5]]
    assert [status for status, _ in reasons] == ["failed"] * 5
    for (_, reason), expected in zip(reasons, [
            "RuntimeError: the trainer failed on purpose", "killed by SIGKILL", "exceeded the time limit of 15 s",
            "exceeded the memory limit of 2048 MB", "not a loadable SB3 PPO model"], strict=True):
        assert expected in reason
    assert table(db, "SELECT version, status FROM models") == [("v0001", "promoted")]
    assert table(db, "SELECT status, count(*) FROM retrain_runs WHERE retrain_id <= 5 GROUP BY status") == [
        ("failed", 5)]
    assert_stopped_cleanly(db)


async def test_a_replay_on_virtual_time_writes_one_timeline(tmp_path: Path, frame: pd.DataFrame,
                                                             models: dict[Action, Path],
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """The daemon on the replay's clock: the session, every decision, the retrain runs and the
    models they publish are all stamped in the replay's March 2023, in causal order, not
    partly in today's wall time."""
    db = tmp_path / "shadow.sqlite"
    monkeypatch.setattr(RetrainScheduler, "trainer_target", "tests.trainer.retrain.retrain_fakes:copies_model")
    monkeypatch.setenv(MODEL_VARIABLE, str(models[Action.BUY]))

    def story(daemon: Daemon, settings: Settings) -> bool:
        # the committed decisions, not the engine: a swap may land while a decision by the old
        # strategy is still committing
        return table(db, "SELECT count(*) FROM decisions WHERE model_version = 'v0001'") != [(0,)]

    daemon = await run_story(frame, db, story, virtual_time=True)
    assert daemon.retrainer.outcomes[0].status == "promoted"
    first_ms, last_ms = int(frame["open_time_ms"].iloc[0]), int(frame["open_time_ms"].iloc[-1]) + 60_000
    (started, stopped), = table(db, "SELECT started_ms, stopped_ms FROM runs")
    (retrain_started, retrain_finished), = table(db, "SELECT started_ms, finished_ms FROM retrain_runs "
                                                     "ORDER BY retrain_id LIMIT 1")
    (created, promoted), = table(db, "SELECT created_ms, promoted_ms FROM models WHERE version = 'v0001'")
    decided = [r[4] for r in decisions(db)]
    first_by_v1 = min(r[4] for r in decisions(db) if r[3] == "v0001")
    trigger_close_ms = int(frame["open_time_ms"].iloc[HISTORY + EVERY - 1]) + 60_000
    stamps = [started, *decided, retrain_started, retrain_finished, created, promoted, stopped]
    assert all(first_ms <= t <= last_ms for t in stamps), "a row was stamped outside the replay's time"
    assert started <= decided[0] and decided == sorted(decided) and decided[-1] <= stopped
    assert trigger_close_ms <= retrain_started <= created <= promoted <= retrain_finished <= first_by_v1
