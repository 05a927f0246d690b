"""``shadow verify`` on ledgers the daemon wrote against the local Bybit replay (real sockets,
real BTCUSDT candles): agreement bit for bit with a model file, risk events, a restart and
hot-swaps; the first divergence of a tampered row; one clear line for what cannot be verified."""

from __future__ import annotations

import asyncio
import hashlib
import json
import shutil
import sqlite3
import sys
from collections.abc import Callable
from contextlib import closing
from itertools import groupby, pairwise
from pathlib import Path

import pandas as pd
import pytest

from bot.cli import main
from bot.commands.models import promote_version
from bot.commands.verify import describe
from bot.daemon import Daemon
from bot.replay.market import ReplayMarket, ReplaySeries
from bot.replay.server import ReplayServer
from config.settings import (
    DaemonSettings,
    EnvSettings,
    FeedSettings,
    LedgerSettings,
    RetrainSettings,
    RiskSettings,
    Settings,
)
from env.candles import format_ms
from env.types import Observation
from state.database import connect_reader
from state.ledger import Ledger
from state.records import observation_hash
from strategies.base import Decider, MarketContext
from strategies.baselines import Flat
from strategies.model_metadata import metadata_path
from tests.bot.conftest import fast_exchange
from tests.bot.daemon_replay import HISTORY, replay_daemon
from trainer.data.ledger_source import ledger_backtest_candles, pick_series
from trainer.evaluation.backtest import make_env, run_backtest
from trainer.models.store import publish_model
from trainer.verification.divergence import Divergence
from trainer.verification.ledger import SymbolVerdict, verify_ledger

START, N = 1000, 520  # 2023-03-01 16:40 UTC: the live candles cross midnight
ENV = EnvSettings(slippage_bps=1.0)
RISK = RiskSettings(max_drawdown=0.03, daily_loss_limit=0.02)  # tight: the guard acts


@pytest.fixture(scope="module")
def frame(btc_candles: pd.DataFrame) -> pd.DataFrame:
    return btc_candles.iloc[START:START + N].reset_index(drop=True)


@pytest.fixture(scope="module")
def model_file(tmp_path_factory: pytest.TempPathFactory, decisive_ppo_model: Path) -> Path:
    """The decisive PPO model, copied where the daemon is told to find it (``ppo:PATH``)."""
    return copy_model(decisive_ppo_model, tmp_path_factory.mktemp("models") / "model.zip")


@pytest.fixture(scope="module")
def risky_ledger(tmp_path_factory: pytest.TempPathFactory, frame: pd.DataFrame, model_file: Path) -> Path:
    """A model file trading with slippage and tight risk limits: fills, trades and every kind of
    risk event (the daily loss limit, its reset at midnight, the drawdown stop)."""
    db = tmp_path_factory.mktemp("risky") / "shadow.sqlite"
    asyncio.run(replay_daemon(frame, db, f"ppo:{model_file}", risk=RISK, env=ENV))
    return db


def copy_model(source: Path, target: Path) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(source, target)
    shutil.copy(metadata_path(source), metadata_path(target))
    return target


def copy_ledger(source: Path, target: Path) -> Path:
    with closing(sqlite3.connect(source)) as src, closing(sqlite3.connect(target)) as dst:
        src.backup(dst)
    return target


def sql(db: Path, statement: str, *params: object) -> list[tuple]:
    with closing(sqlite3.connect(db)) as conn, conn:
        return conn.execute(statement, params).fetchall()


def verify(db: Path, settings: Settings | None = None, **options: object) -> list[SymbolVerdict]:
    with closing(connect_reader(db)) as conn:
        return verify_ledger(conn, db, settings or Settings(), **options)


def shadow(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """``shadow ARGS`` as the console script runs it: (exit status, stdout, stderr), each on one line."""
    monkeypatch.setattr(sys, "argv", ["shadow", *args])
    monkeypatch.setenv("COLUMNS", "1000")  # long temporary paths stay whole
    with pytest.raises(SystemExit) as exit_info:
        main()
    out, err = capsys.readouterr()
    return int(exit_info.value.code or 0), " ".join(out.split()), " ".join(err.split())


def decisions(db: Path) -> list[tuple]:
    return sql(db, "SELECT open_time_ms, action, strategy, model_version FROM decisions ORDER BY open_time_ms")


# --------------------------------------------------------------------------- agreement
def test_a_live_ledger_with_fills_and_risk_events_agrees_bit_for_bit(
        risky_ledger: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    n = len(decisions(risky_ledger))
    assert n == N - HISTORY  # every live candle decided, the last one included
    assert sql(risky_ledger, "SELECT count(*) FROM trades")[0][0] > 10
    assert sql(risky_ledger, "SELECT DISTINCT kind FROM risk_events ORDER BY kind") == [
        ("daily_loss",), ("daily_reset",), ("max_drawdown",)]

    code, out, err = shadow(monkeypatch, capsys, "verify", "--db", str(risky_ledger))
    assert code == 0, err
    version = decisions(risky_ledger)[0][3]
    assert version.startswith("sha256:")
    assert f"BTCUSDT 1m: {n} decisions" in out and "all agree bit for bit (actions, obs_hash, fills, equity)" in out
    assert f"decided by ppo {version} ({n}); settings recorded by the daemon" in out


def test_a_ledger_across_a_restart_agrees_and_settings_that_changed_are_refused(
        tmp_path: Path, frame: pd.DataFrame, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "shadow.sqlite"
    asyncio.run(replay_daemon(frame.iloc[:360], db, "sma:fast=5,slow=20"))
    asyncio.run(replay_daemon(frame, db, "sma:fast=5,slow=20", history=400))  # 40 candles come over REST
    assert sql(db, "SELECT count(DISTINCT run_id) FROM decisions") == [(2,)]
    (verdict,) = verify(db)
    assert verdict.divergence is None and verdict.decisions == N - HISTORY

    sql(db, "UPDATE runs SET settings = json_set(settings, '$.env.commission', 0.001) WHERE run_id = 2")
    code, _, err = shadow(monkeypatch, capsys, "verify", "--db", str(db))
    assert code == 2 and err == (f"error: ledger {db}: BTCUSDT 1m was traded by run 1 and run 2 with different "
                                 "settings (env.commission 0.0004 vs 0.001); verify replays one account with one "
                                 "set of [env] and [risk] settings")


async def test_verify_reads_one_snapshot_while_the_daemon_writes(tmp_path: Path, frame: pd.DataFrame) -> None:
    db = tmp_path / "shadow.sqlite"
    running = asyncio.create_task(replay_daemon(frame, db, "sma:fast=5,slow=20", speed=30.0))
    while _decided(db) < 100:
        await asyncio.sleep(0.05)
    (verdict,) = await asyncio.to_thread(verify, db)
    assert not running.done()  # the daemon kept writing while verify read
    await running
    assert verdict.divergence is None and 100 <= verdict.decisions < len(decisions(db)) == N - HISTORY


def _decided(db: Path) -> int:
    try:
        return sql(db, "SELECT count(*) FROM decisions")[0][0] if db.exists() else 0
    except sqlite3.OperationalError:  # the schema is not there yet
        return 0


class Witness:
    """Flat, keeping the hash of every observation it is shown, by candle time."""

    name = "flat"

    def __init__(self) -> None:
        self.hashes: dict[int, str] = {}

    def prepare(self, context: MarketContext) -> Decider:
        decide = Flat().prepare(context)

        def witness(t: int, obs: Observation) -> int:
            self.hashes[int(context.open_time_ms[t])] = observation_hash(obs)
            return decide(t, obs)

        return witness


def test_a_backtest_over_the_ledger_from_any_time_sees_the_daemons_observation(tmp_path: Path,
                                                                              frame: pd.DataFrame) -> None:
    """The one history rule: the daemon warmed up on 400 candles, more than the env's 219;
    ``shadow backtest --db --from T`` keeps them all, so its first observation is the daemon's at T."""
    db = tmp_path / "shadow.sqlite"
    asyncio.run(replay_daemon(frame, db, "flat", history=400))
    rows = sql(db, "SELECT open_time_ms, obs_hash FROM decisions ORDER BY open_time_ms")
    for t, obs_hash in (rows[0], rows[len(rows) // 2]):  # a flat account: the observation is the market's
        with closing(connect_reader(db)) as conn:
            series = pick_series(conn, db, None, None)
            candles, start = ledger_backtest_candles(conn, db, series, HISTORY, pd.Timestamp(t, unit="ms").isoformat())
        witness = Witness()
        run_backtest(witness, make_env(candles, EnvSettings()), start)
        assert witness.hashes[t] == obs_hash


# --------------------------------------------------------------------------- hot-swaps
@pytest.fixture(scope="module")
def swapped_ledger(tmp_path_factory: pytest.TempPathFactory, btc_candles: pd.DataFrame, decisive_ppo_model: Path,
                   ppo_model: Path) -> Path:
    """Cold start on the fallback (an SMA cross), then ``shadow models promote`` v0001, v0002
    and back to v0001 while the daemon runs: every switch is a hot-swap between candles."""
    folder = tmp_path_factory.mktemp("swapped")
    db, registry = folder / "shadow.sqlite", folder / "registry"
    frame = btc_candles.iloc[3000:3000 + HISTORY + 1500].reset_index(drop=True)
    asyncio.run(_publish_candidates(db, registry, [decisive_ppo_model, ppo_model]))
    asyncio.run(_swap_story(frame, db, registry, ["v0001", "v0002", "v0001"], decisions_per_turn=40))
    return db


async def _publish_candidates(db: Path, registry: Path, models: list[Path]) -> None:
    async with await Ledger.open(db) as ledger:
        for model in models:
            await publish_model(ledger, registry, model, symbol="BTCUSDT", interval="1m")


async def _swap_story(frame: pd.DataFrame, db: Path, registry: Path, promotions: list[str],
                      decisions_per_turn: int) -> None:
    market = ReplayMarket([ReplaySeries.from_frame("BTCUSDT", frame)], history=HISTORY)
    async with ReplayServer(market, speed=150.0) as server:
        settings = Settings(exchange=fast_exchange(server), feed=FeedSettings(symbols=["BTCUSDT"]),
                            ledger=LedgerSettings(db_path=db),
                            daemon=DaemonSettings(strategy="registry", fallback="sma:fast=5,slow=20",
                                                  heartbeat_minutes=60),
                            retrain=RetrainSettings(poll_seconds=0.1, registry_dir=registry))
        daemon = Daemon(settings)
        stop = asyncio.Event()
        todo = list(promotions)
        turn = {"serving": None, "decisions": 0, "promoting": False}
        pending: list[asyncio.Future[str]] = []

        def story(symbol: str, item: object, latency_ms: float) -> None:
            serving = daemon.engines[symbol].serving.model_version
            if serving != turn["serving"]:
                turn.update(serving=serving, decisions=0, promoting=False)
            turn["decisions"] += 1
            if turn["decisions"] >= decisions_per_turn and not turn["promoting"]:
                if not todo:
                    stop.set()
                    return
                turn["promoting"] = True
                pending.append(asyncio.ensure_future(promote_version(db, settings, todo.pop(0))))

        daemon.listeners.append(story)
        await asyncio.wait_for(daemon.run(stop), 120)
        await asyncio.gather(*pending)
    assert stop.is_set(), "the replay ended before the story did"


def test_a_ledger_with_a_cold_start_and_hot_swaps_agrees_turn_by_turn(swapped_ledger: Path) -> None:
    rows = decisions(swapped_ledger)
    turns = [(" ".join(filter(None, key)), len(list(group))) for key, group in groupby(rows, key=lambda r: r[2:])]
    assert [label for label, _ in turns] == ["sma:fast=5,slow=20,short=false", "ppo v0001", "ppo v0002", "ppo v0001"]
    (verdict,) = verify(swapped_ledger)
    assert verdict.divergence is None
    assert list(verdict.deciders) == turns and verdict.decisions == len(rows)


@pytest.fixture
def registry_copy(tmp_path: Path, swapped_ledger: Path) -> Path:
    """A copy of the hot-swap ledger and its registry folder, to break."""
    registry = tmp_path / "registry"
    shutil.copytree(swapped_ledger.parent / "registry", registry)
    db = copy_ledger(swapped_ledger, tmp_path / "shadow.sqlite")
    sql(db, "UPDATE models SET path = replace(path, ?, ?)", str(swapped_ledger.parent / "registry"), str(registry))
    return db


def test_a_missing_model_is_one_line_and_from_replays_its_decisions_instead(
        registry_copy: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    (path,) = sql(registry_copy, "SELECT path FROM models WHERE version = 'v0002'")[0]
    Path(path).unlink()
    rows = decisions(registry_copy)
    first = next(r[0] for r in rows if r[3] == "v0002")
    code, _, err = shadow(monkeypatch, capsys, "verify", "--db", str(registry_copy))
    assert code == 2 and err == (f"error: ledger {registry_copy}: the decision at {format_ms(first)} (ppo v0002): "
                                 f"model v0002: file {path} is missing; --from a time after its decisions replays "
                                 "them from their recorded actions instead")

    rollback = next(r[0] for before, r in pairwise(rows) if (before[3], r[3]) == ("v0002", "v0001"))
    code, out, err = shadow(monkeypatch, capsys, "verify", "--db", str(registry_copy), "--from",
                            pd.Timestamp(rollback, unit="ms").isoformat())
    assert code == 0, err
    replayed = sum(r[0] < rollback for r in rows)
    assert f"{len(rows)} decisions" in out and "all agree bit for bit" in out
    assert f"decided by ppo v0001 ({len(rows) - replayed}); the {replayed} before {format_ms(rollback)} " \
           "replayed from their recorded actions" in out


def test_a_model_file_changed_after_publishing_is_refused(
        registry_copy: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    (path,) = sql(registry_copy, "SELECT path FROM models WHERE version = 'v0001'")[0]
    Path(path).write_bytes(Path(path).read_bytes() + b"tampered")
    code, _, err = shadow(monkeypatch, capsys, "verify", "--db", str(registry_copy))
    assert code == 2 and f"(ppo v0001): model v0001: {path} has sha256 " in err
    assert err.endswith("refusing to load a file that changed after it was published; --from a time after its "
                        "decisions replays them from their recorded actions instead")


# --------------------------------------------------------------------------- divergence
def _first(db: Path, where: str, after: int = 50) -> tuple[int, int]:
    """(decision_id, open_time_ms) of the first decision matching ``where``, past the first ``after``."""
    return sql(db, f"SELECT d.decision_id, d.open_time_ms FROM decisions d WHERE {where} "
                   "ORDER BY d.open_time_ms LIMIT 1 OFFSET ?", after)[0]


def _equity(db: Path) -> tuple[int, str, str]:
    decision_id, t = _first(db, "1 = 1")
    (equity,) = sql(db, "SELECT equity FROM equity WHERE decision_id = ?", decision_id)[0]
    sql(db, "UPDATE equity SET equity = ? WHERE decision_id = ?", equity + 1e-9, decision_id)
    return t, repr(equity + 1e-9), repr(equity)


def _action(db: Path) -> tuple[int, str, str]:
    decision_id, t = _first(db, "d.action = 0")
    sql(db, "UPDATE decisions SET action = 2 WHERE decision_id = ?", decision_id)
    return t, "SELL", "HOLD"


def _obs_hash(db: Path) -> tuple[int, str, str]:
    decision_id, t = _first(db, "1 = 1")
    (obs_hash,) = sql(db, "SELECT obs_hash FROM decisions WHERE decision_id = ?", decision_id)[0]
    sql(db, "UPDATE decisions SET obs_hash = ? WHERE decision_id = ?", "0" * 64, decision_id)
    return t, "0" * 64, obs_hash


def _fill_price(db: Path) -> tuple[int, str, str]:
    decision_id, t = _first(db, "EXISTS (SELECT 1 FROM fills f WHERE f.decision_id = d.decision_id)", 5)
    (price,) = sql(db, "SELECT price FROM fills WHERE decision_id = ? AND seq = 0", decision_id)[0]
    sql(db, "UPDATE fills SET price = ? WHERE decision_id = ? AND seq = 0", price * (1 + 1e-15), decision_id)
    return t, repr(price * (1 + 1e-15)), repr(price)


def _trade(db: Path) -> tuple[int, str, str]:
    decision_id, t = _first(db, "EXISTS (SELECT 1 FROM trades x WHERE x.exit_decision_id = d.decision_id)", 5)
    (net,) = sql(db, "SELECT net_pnl FROM trades WHERE exit_decision_id = ?", decision_id)[0]
    sql(db, "UPDATE trades SET net_pnl = 0.5 WHERE exit_decision_id = ?", decision_id)
    return t, "0.5", repr(net)


def _risk_event(db: Path) -> tuple[int, str, str]:
    t, kind, detail = sql(db, "SELECT time_ms, kind, detail FROM risk_events ORDER BY event_id LIMIT 1")[0]
    sql(db, "DELETE FROM risk_events WHERE time_ms = ?", t)
    return t, "none", f"{kind}: {detail}"


@pytest.mark.parametrize(("field", "change"), [
    ("equity", _equity), ("action", _action), ("obs_hash", _obs_hash), ("fills[0].price", _fill_price),
    ("fills[0].trade.net_pnl", _trade), ("risk_events", _risk_event),
], ids=["equity", "action", "obs_hash", "fill", "trade", "risk_event"])
def test_a_tampered_row_is_the_first_divergence(field: str, change: Callable[[Path], tuple[int, str, str]],
                                                tmp_path: Path, risky_ledger: Path, monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    db = copy_ledger(risky_ledger, tmp_path / "shadow.sqlite")
    t, live, backtest = change(db)
    (verdict,) = verify(db)
    by = f"ppo {decisions(db)[0][3]}"
    assert verdict.divergence == Divergence(t, field, live, backtest, by)

    code, out, _ = shadow(monkeypatch, capsys, "verify", "--db", str(db))
    assert code == 1
    assert f"first divergence at {format_ms(t)} (decided by {by}): {field}: live {live}, backtest {backtest}" in out
    assert out.endswith("1 of 1 symbol(s) diverge: BTCUSDT")


def test_decisions_before_from_are_replayed_and_their_money_still_checked(tmp_path: Path, risky_ledger: Path) -> None:
    """A HOLD while flat turned into a BUY: replayed as recorded, it opens a position the
    ledger never filled."""
    db = copy_ledger(risky_ledger, tmp_path / "shadow.sqlite")
    decision_id, t = sql(db, "SELECT d.decision_id, d.open_time_ms FROM decisions d JOIN equity e USING (decision_id)"
                             " WHERE d.action = 0 AND e.side = 0 ORDER BY d.open_time_ms LIMIT 1 OFFSET 5")[0]
    sql(db, "UPDATE decisions SET action = 1 WHERE decision_id = ?", decision_id)
    (verdict,) = verify(db, start_ms=t + 3_600_000)
    assert verdict.divergence == Divergence(t, "fills", "0 fills", "1 fill", "recorded action")


# --------------------------------------------------------------------------- bad input
@pytest.mark.parametrize(("args", "message"), [
    (["--db", "MISSING"], "error: ledger MISSING: no such file"),
    (["--symbol", "DOGEUSDT"], (f"error: ledger LEDGER: no decisions for DOGEUSDT; it has BTCUSDT ({N - HISTORY} "
                                "decisions)")),
    (["--from", "2023-03-05"], ("error: ledger LEDGER: no BTCUSDT 1m decisions in [2023-03-05 00:00, end); it has "
                                f"{N - HISTORY} from 2023-03-01 20:19 to 2023-03-02 01:19")),
    (["--from", "March"], "error: --from 'March' is not a date"),
    (["--from", "2023-03-02", "--to", "2023-03-01"], "error: --from 2023-03-02 is not before --to 2023-03-01"),
])
def test_bad_input_is_one_line(args: list[str], message: str, tmp_path: Path, risky_ledger: Path,
                               monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    names = {"LEDGER": str(risky_ledger), "MISSING": str(tmp_path / "missing.sqlite")}
    args = [names.get(a, a) for a in args]
    if "--db" not in args:
        args += ["--db", str(risky_ledger)]
    code, out, err = shadow(monkeypatch, capsys, "verify", *args)
    expected = message.replace("LEDGER", str(risky_ledger)).replace("MISSING", str(tmp_path / "missing.sqlite"))
    assert (code, out) == (2, "") and err.startswith(expected), err


def test_a_changed_or_missing_model_file_of_a_ppo_spec_is_one_line(
        tmp_path: Path, risky_ledger: Path, model_file: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    db = copy_ledger(risky_ledger, tmp_path / "shadow.sqlite")
    moved = copy_model(model_file, tmp_path / "moved" / "model.zip")
    sql(db, "UPDATE runs SET settings = json_set(settings, '$.daemon.strategy', ?)", f"ppo:{moved}")
    assert shadow(monkeypatch, capsys, "verify", "--db", str(db))[0] == 0  # found where the session said

    moved.write_bytes(moved.read_bytes() + b"tampered")
    code, _, err = shadow(monkeypatch, capsys, "verify", "--db", str(db))
    version = decisions(db)[0][3]
    assert code == 2 and err.startswith(f"error: ledger {db}: the decision at 2023-03-01 20:19 (ppo {version}): "
                                        f"model file {moved} is now sha256:")
    assert err.endswith("refusing to load a file that changed after it traded; --from a time after its decisions "
                        "replays them from their recorded actions instead")
    moved.unlink()
    assert f"model file {moved} is missing; --from" in shadow(monkeypatch, capsys, "verify", "--db", str(db))[2]


@pytest.mark.parametrize(("change", "message"), [
    ("UPDATE runs SET settings = json_set(settings, '$.env.commission', -1)",
     ("the settings recorded by run 1 do not load in this Shadow: env.commission: Input should be greater than or "
      "equal to 0")),
    ("DELETE FROM candles WHERE open_time_ms = (SELECT min(open_time_ms) + 600000 FROM candles)",
     "BTCUSDT 1m candles: gap: 1 candle(s) missing between 2023-03-01 16:49:00 and 2023-03-01 16:51:00"),
], ids=["settings", "gap"])
def test_a_ledger_that_cannot_be_replayed_is_one_line(change: str, message: str, tmp_path: Path, risky_ledger: Path,
                                                      monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    db = copy_ledger(risky_ledger, tmp_path / "shadow.sqlite")
    sql(db, change)
    code, _, err = shadow(monkeypatch, capsys, "verify", "--db", str(db))
    assert code == 2 and err.startswith(f"error: ledger {db}: {message}")


def test_a_ledger_from_before_settings_were_recorded_verifies_with_the_daemons_config(
        tmp_path: Path, risky_ledger: Path, model_file: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """A schema-3 ledger (what Shadow wrote before sessions recorded their settings): migrated,
    then verified with the settings the daemon ran with, given as --config."""
    db = copy_ledger(risky_ledger, tmp_path / "shadow.sqlite")
    sql(db, "ALTER TABLE runs DROP COLUMN settings")
    sql(db, "DROP TABLE feed_problems")  # schema 6: a schema-3 ledger has neither
    sql(db, "PRAGMA user_version = 3")
    code, _, err = shadow(monkeypatch, capsys, "verify", "--db", str(db))
    assert code == 2 and "is at schema version 3" in err and f"shadow migrate --db {db}" in err
    assert shadow(monkeypatch, capsys, "migrate", "--db", str(db))[0] == 0

    code, _, err = shadow(monkeypatch, capsys, "verify", "--db", str(db))  # the defaults trade the registry
    assert code == 2 and err.endswith("a model file the session's [daemon] strategy 'registry' does not name; "
                                      "pass the daemon's --config")
    config = tmp_path / "shadow.toml"
    config.write_text(f'[daemon]\nstrategy = "ppo:{model_file}"\n')
    code, out, _ = shadow(monkeypatch, capsys, "verify", "--db", str(db), "--config", str(config))
    assert code == 1 and "settings configured (the ledger's sessions recorded none" in out  # no slippage, loose limits
    config.write_text(config.read_text() + f'[env]\nslippage_bps = {ENV.slippage_bps}\n[risk]\n'
                      f'max_drawdown = {RISK.max_drawdown}\ndaily_loss_limit = {RISK.daily_loss_limit}\n')
    code, out, err = shadow(monkeypatch, capsys, "verify", "--db", str(db), "--config", str(config))
    assert code == 0, err
    assert "all agree bit for bit" in out


def test_recorded_settings_are_the_sessions_own(risky_ledger: Path, model_file: Path) -> None:
    text, config_hash = sql(risky_ledger, "SELECT settings, config_hash FROM runs")[0]
    assert hashlib.sha256(text.encode()).hexdigest()[:16] == config_hash  # the JSON that config_hash hashes
    recorded = json.loads(text)
    assert recorded["env"]["slippage_bps"] == ENV.slippage_bps and recorded["risk"] == RISK.model_dump()
    assert recorded["daemon"]["strategy"] == f"ppo:{model_file}"


def test_a_long_history_of_turns_is_shortened_in_the_report() -> None:
    turns = tuple((f"ppo v{i:04d}", 10) for i in range(1, 13))
    verdict = SymbolVerdict("BTCUSDT", "1m", 120, 0, 0, 7_140_000, 0, turns, "recorded by the daemon", None)
    assert describe(verdict)[1] == ("  decided by ppo v0001 (10), then ppo v0002 (10), then ppo v0003 (10), then 7 "
                                    "more turns, then ppo v0011 (10), then ppo v0012 (10); settings recorded by the "
                                    "daemon")
