"""The daemon end to end against the local Bybit replay server on 127.0.0.1.

Real sockets, real candles (the bundled BTCUSDT sample), the real ledger: the daemon's
decisions must be exactly the backtest's, and every injected fault must leave exactly
the ledger of a fault-free run.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from bot.daemon import Daemon
from bot.replay.market import ReplayMarket, ReplaySeries
from bot.replay.server import ReplayServer
from config.errors import UserError
from config.settings import DaemonSettings, EnvSettings, FeedSettings, RiskSettings, Settings, TrainSettings
from env.candles import resample_candles
from strategies.model_metadata import load_metadata
from strategies.specs import build_strategy
from tests.bot.daemon_replay import HISTORY, replay_daemon, run_killing_shadow, settings_for
from tests.conftest import PREFIX, decisive
from trainer.evaluation.backtest import make_env, run_backtest
from trainer.training.fold_trainer import PPOTrainer

N = 520


@pytest.fixture(scope="module")
def frame(btc_candles: pd.DataFrame) -> pd.DataFrame:
    return btc_candles.iloc[:N].reset_index(drop=True)


def ledger_rows(db: Path) -> dict[str, list[tuple]]:
    with sqlite3.connect(db) as conn:
        return {
            "decisions": conn.execute("SELECT open_time_ms, action, obs_hash, strategy FROM decisions "
                                      "ORDER BY open_time_ms").fetchall(),
            "fills": conn.execute("SELECT time_ms, side, qty, price, fee FROM fills ORDER BY fill_id").fetchall(),
            "equity": conn.execute("SELECT open_time_ms, equity, cash FROM equity ORDER BY open_time_ms").fetchall(),
            "trades": conn.execute(
                "SELECT entry_time_ms, exit_time_ms, net_pnl FROM trades ORDER BY trade_id").fetchall(),
            "candles": conn.execute("SELECT open_time_ms, close FROM candles ORDER BY open_time_ms").fetchall(),
        }


@pytest.mark.parametrize(("setup", "n_candles"), [("trade", N), ("target", N), ("long_flat", N),
                                                  ("target-stride15", 1400)])
async def test_daemon_replay_equals_the_backtest(tmp_path: Path, btc_candles: pd.DataFrame,
                                                 decisive_models: Callable[[str], Path], setup: str,
                                                 n_candles: int) -> None:
    """Parity for every action mode and a decision stride: (candle time, action, fill price,
    equity) of the daemon == the backtest's; the ledger records the trade actions 0-3."""
    frame = btc_candles.iloc[:n_candles].reset_index(drop=True)
    spec = f"ppo:{decisive_models(setup)}"
    risk = RiskSettings(max_drawdown=0.02, daily_loss_limit=0.01)
    env = EnvSettings(slippage_bps=1.0)
    await replay_daemon(frame, tmp_path / "live.sqlite", spec, risk=risk, env=env)
    rows = ledger_rows(tmp_path / "live.sqlite")

    result = run_backtest(build_strategy(spec, lookback_window=20), make_env(frame, env), risk=risk)
    n = len(result.actions)  # the backtest cannot decide the last candle (it has no next one)
    assert n == n_candles - 1 - HISTORY and len(rows["decisions"]) == n + 1
    assert [(t, a) for t, a, *_ in rows["decisions"][:n]] == list(zip(result.times_ms[:-1].tolist(),
                                                                      result.actions.tolist(), strict=True))
    assert [(f[0], f[3]) for f in rows["fills"] if f[0] < result.times_ms[-1]] == [
        (f.time_ms, f.price) for f in result.fills]
    assert [e for _, e, _ in rows["equity"][:n]] == result.decision_equity.tolist()
    assert len(result.fills) > 10 and {a for _, a, *_ in rows["decisions"]} <= {0, 1, 2, 3}


async def test_a_model_trained_on_15m_candles_trades_a_15m_feed_as_the_backtest(tmp_path: Path,
                                                                              btc_candles: pd.DataFrame) -> None:
    """Train on a coarser interval: the model's metadata says 15m, the daemon streams 15m
    candles, and its decisions are the backtest's, bit for bit."""
    candles = resample_candles(btc_candles, 900_000)  # 2,016 real 15m candles
    trained = PPOTrainer(2048, TrainSettings(episode_length=256, n_steps=512, n_envs=1), symbol="BTCUSDT")(
        candles.iloc[:1200].reset_index(drop=True), seed=0, model_path=tmp_path / "m15.zip",
        env_settings=EnvSettings(action_mode="target"), extra={})
    spec = f"ppo:{decisive(trained, tmp_path / 'decisive15.zip')}"
    frame = candles.iloc[1200:1700].reset_index(drop=True)
    await replay_daemon(frame, tmp_path / "live.sqlite", spec, feed=FeedSettings(symbols=["BTCUSDT"], interval="15m"))
    rows = ledger_rows(tmp_path / "live.sqlite")
    result = run_backtest(build_strategy(spec, lookback_window=20), make_env(frame, EnvSettings()), risk=RiskSettings())
    n = len(result.actions)
    assert load_metadata(trained).timeframe == "15m" and n == len(frame) - 1 - HISTORY
    assert [(t, a) for t, a, *_ in rows["decisions"][:n]] == list(zip(result.times_ms[:-1].tolist(),
                                                                      result.actions.tolist(), strict=True))
    assert [e for _, e, _ in rows["equity"][:n]] == result.decision_equity.tolist() and len(result.fills) > 10


@pytest.fixture(scope="module")
def fault_free(tmp_path_factory: pytest.TempPathFactory, frame: pd.DataFrame) -> dict[str, list[tuple]]:
    db = tmp_path_factory.mktemp("fault_free") / "ledger.sqlite"
    asyncio.run(replay_daemon(frame, db, "sma:fast=5,slow=20"))
    return ledger_rows(db)


@pytest.mark.parametrize(
    ("faults", "logged"),
    [
        (("drop@60",), "websocket connection lost"),
        (("stall@60",), "watchdog"),
        (("duplicate@60", "duplicate@150"), "dropped duplicate candle"),
        (("reorder@60",), "out of order"),
        (("malformed@60",), "skipped malformed message"),
        (("skip@60:5",), "backfilling over REST"),
        (("skip@60", "ratelimit:3"), "rate-limited"),
    ],
    ids=["drop", "stall", "duplicate", "reorder", "malformed", "skip", "rest-rate-limit"],
)
async def test_each_fault_leaves_the_fault_free_ledger(tmp_path: Path, frame: pd.DataFrame,
                                                       fault_free: dict[str, list[tuple]], faults: tuple[str, ...],
                                                       logged: str, caplog: pytest.LogCaptureFixture) -> None:
    db = tmp_path / "ledger.sqlite"
    with caplog.at_level("INFO"):
        await replay_daemon(frame, db, "sma:fast=5,slow=20", faults=faults)
    assert ledger_rows(db) == fault_free  # nothing missed, nothing doubled
    assert logged in "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("bot."))


async def test_stop_and_restart_resumes_from_the_ledger(tmp_path: Path, frame: pd.DataFrame,
                                                        fault_free: dict[str, list[tuple]]) -> None:
    """Stopped half-way, restarted against a server that has moved on: the gap comes over
    REST and the final ledger equals the uninterrupted run's."""
    db = tmp_path / "ledger.sqlite"
    await replay_daemon(frame.iloc[:360], db, "sma:fast=5,slow=20")
    await replay_daemon(frame, db, "sma:fast=5,slow=20", history=400)
    assert ledger_rows(db) == fault_free
    with sqlite3.connect(db) as conn:
        runs = conn.execute("SELECT run_id, stopped_ms IS NOT NULL, stop_reason FROM runs").fetchall()
    assert runs == [(1, 1, "stop requested"), (2, 1, "stop requested")]


async def test_cold_start_trades_the_fallback_and_records_it(tmp_path: Path, frame: pd.DataFrame,
                                                             caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level("WARNING"):
        await replay_daemon(frame.iloc[:260], tmp_path / "l.sqlite", "registry")
    rows = ledger_rows(tmp_path / "l.sqlite")
    assert {strategy for *_, strategy in rows["decisions"]} == {"flat"}  # every decision says who took it
    assert "cold start: the model registry has no promoted model" in caplog.text


async def test_unknown_symbol_is_a_clear_error(tmp_path: Path, frame: pd.DataFrame) -> None:
    market = ReplayMarket([ReplaySeries.from_frame("BTCUSDT", frame.iloc[:260])], history=HISTORY)
    async with ReplayServer(market, speed=400) as server:
        settings = settings_for(server, tmp_path / "l.sqlite", "flat").model_copy(
            update={"feed": FeedSettings(symbols=["BTCUSDT", "DOGEUSDT"])})
        with pytest.raises(UserError, match="DOGEUSDT"):
            await asyncio.wait_for(Daemon(settings).run(asyncio.Event()), 10)


def test_too_few_warmup_candles_is_a_config_error() -> None:
    settings = Settings(daemon=DaemonSettings(warmup_candles=220), env=EnvSettings(lookback_window=40))
    with pytest.raises(UserError, match=r"daemon\.warmup_candles: 220: needs at least 239"):
        Daemon(settings)


def test_the_daemon_needs_exactly_the_candles_the_env_needs_before_its_first_decision() -> None:
    """One history rule (``env.features.warmup_prefix``) for the daemon and the env."""
    assert Daemon(Settings(daemon=DaemonSettings(warmup_candles=PREFIX))).settings.daemon.warmup_candles == PREFIX
    with pytest.raises(UserError, match=f"daemon.warmup_candles: {PREFIX - 1}: needs at least {PREFIX}"):
        Daemon(Settings(daemon=DaemonSettings(warmup_candles=PREFIX - 1)))


def test_sigkill_at_random_moments_then_restart_ends_with_the_uninterrupted_ledger(
        tmp_path: Path, frame: pd.DataFrame, fault_free: dict[str, list[tuple]]) -> None:
    """``shadow run`` in a subprocess, killed with SIGKILL at random points of a replay and
    restarted each time, ends with exactly the ledger of the run that never stopped."""
    db = tmp_path / "ledger.sqlite"
    kills = run_killing_shadow(tmp_path, frame, db, '[daemon]\nstrategy = "sma:fast=5,slow=20"\n',
                               decisions=N - HISTORY)
    assert kills == 5
    assert ledger_rows(db) == fault_free
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        runs = conn.execute("SELECT count(*), sum(stopped_ms IS NULL) FROM runs").fetchone()
    assert runs[1] >= 1  # killed sessions never recorded a stop
