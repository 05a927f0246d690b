"""Funding live: the daemon against a replay server that publishes funding (history over
REST, announcements on the ``tickers`` stream) charges exactly what the backtest of the same
candles and funding column charges, recovers a funding time it missed while disconnected,
and restarts across a funding time without a difference."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from bot.replay.market import ReplayMarket, ReplaySeries
from bot.replay.server import ReplayServer
from config.errors import UserError
from config.settings import EnvSettings, RiskSettings
from env.candles import format_ms
from strategies.specs import build_strategy
from tests.bot.daemon_replay import HISTORY, replay_daemon, settings_for
from tests.bot.test_daemon import ledger_rows
from tests.conftest import REPO, with_funding
from trainer.evaluation.backtest import make_env, run_backtest

N = 1000  # 2023-03-01 00:00 .. 16:39: the funding times 08:00 (candle 479 closes then) and 16:00 (959)
EIGHT_AM = 479  # the candle whose close is 08:00
MINUTE = 60_000


@pytest.fixture(scope="module")
def frame(btc_candles: pd.DataFrame) -> pd.DataFrame:
    return with_funding(btc_candles.iloc[:N].reset_index(drop=True))


def funding_rows(db: Path) -> dict[str, list[tuple]]:
    with sqlite3.connect(db) as conn:
        return {
            "funding": conn.execute("SELECT time_ms, rate, price, side, qty, amount FROM funding "
                                    "ORDER BY time_ms").fetchall(),
            "rates": conn.execute("SELECT time_ms, rate FROM funding_rates ORDER BY time_ms").fetchall(),
            "account": conn.execute("SELECT funding_paid, position_funding, cash FROM positions").fetchall(),
            "trades": conn.execute("SELECT funding, net_pnl FROM trades ORDER BY trade_id").fetchall(),
        }


def sources(db: Path) -> dict[int, str]:
    with sqlite3.connect(db) as conn:
        return dict(conn.execute("SELECT time_ms, source FROM funding_rates").fetchall())


@pytest.fixture(scope="module")
def funded_ledger(tmp_path_factory: pytest.TempPathFactory, frame: pd.DataFrame, decisive_ppo_model: Path) -> Path:
    """The daemon's ledger of a replay whose server publishes funding."""
    db = tmp_path_factory.mktemp("funded") / "live.sqlite"
    asyncio.run(replay_daemon(frame, db, f"ppo:{decisive_ppo_model}", risk=RISK, env=ENV))
    return db


RISK, ENV = RiskSettings(max_drawdown=0.5, daily_loss_limit=0.3), EnvSettings(slippage_bps=1.0)


def test_daemon_with_funding_equals_the_backtest_of_the_funding_column(funded_ledger: Path, frame: pd.DataFrame,
                                                                       decisive_ppo_model: Path) -> None:
    spec, risk, env, db = f"ppo:{decisive_ppo_model}", RISK, ENV, funded_ledger
    rows, funding = ledger_rows(db), funding_rows(db)

    result = run_backtest(build_strategy(spec, lookback_window=20), make_env(frame, env), risk=risk)
    n = len(result.actions)
    assert [(t, a) for t, a, *_ in rows["decisions"][:n]] == list(zip(result.times_ms[:-1].tolist(),
                                                                      result.actions.tolist(), strict=True))
    assert [(f[0], f[3]) for f in rows["fills"] if f[0] < result.times_ms[-1]] == [
        (f.time_ms, f.price) for f in result.fills]
    assert [e for _, e, _ in rows["equity"][:n]] == result.decision_equity.tolist()
    assert funding["funding"] == [tuple(p) for p in result.funding]
    assert len(result.funding) >= 1 and result.metrics.funding_paid != 0.0
    times = frame["open_time_ms"]
    announced = {int(times[EIGHT_AM] + MINUTE), int(times[959] + MINUTE)}
    assert {t: s for t, s in sources(db).items() if t in announced} == dict.fromkeys(announced, "ticker")


def test_shadow_verify_checks_the_funding_of_every_decision(tmp_path: Path, funded_ledger: Path,
                                                            monkeypatch: pytest.MonkeyPatch,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    from tests.bot.test_verify import copy_ledger, shadow, sql

    code, out, err = shadow(monkeypatch, capsys, "verify", "--db", str(funded_ledger))
    assert code == 0, err
    assert "all agree bit for bit" in out
    db = copy_ledger(funded_ledger, tmp_path / "tampered.sqlite")
    ((time_ms, amount),) = sql(db, "SELECT time_ms, amount FROM funding ORDER BY time_ms LIMIT 1")
    sql(db, "UPDATE funding SET amount = ? WHERE time_ms = ?", amount * 2, time_ms)
    code, out, _ = shadow(monkeypatch, capsys, "verify", "--db", str(db))
    assert code == 1 and f"first divergence at {format_ms(time_ms - MINUTE)}" in out and ": funding: " in out


async def test_every_account_settles_its_own_funding_as_its_backtest_does(tmp_path: Path, frame: pd.DataFrame) -> None:
    """Three accounts on one perpetual (their own strategies, sizes and money): each pays the
    funding of its own position at each funding time, exactly what the backtest of its
    strategy with its settings charges, and `shadow verify` agrees on every account."""
    from contextlib import closing

    from config.accounts import AccountSettings, trading_accounts
    from config.settings import Settings
    from state.database import connect_reader
    from trainer.verification.ledger import verify_ledger

    accounts = (AccountSettings(name="hold", strategy="buy_and_hold"),
                AccountSettings(name="half", strategy="buy_and_hold", initial_balance=250.0, max_position_size=0.5),
                AccountSettings(name="sma", strategy="sma:fast=5,slow=20", commission=0.001))
    db = tmp_path / "accounts.sqlite"
    await replay_daemon(frame, db, "flat", accounts=accounts)
    with sqlite3.connect(db) as conn:
        paid = conn.execute("SELECT account, time_ms, rate, price, side, qty, amount FROM funding "
                            "ORDER BY account, time_ms").fetchall()
    for account in trading_accounts(Settings(accounts=accounts)):
        result = run_backtest(build_strategy(account.strategy, lookback_window=20), make_env(frame, account.env),
                              risk=account.risk)
        assert [tuple(p) for name, *p in paid if name == account.name] == [tuple(p) for p in result.funding]
    by_account = {name: [p[-1] for n, *p in paid if n == name] for name in ("hold", "half", "sma")}
    assert len(by_account["hold"]) == len(by_account["half"]) == 2 and by_account["hold"] != by_account["half"]
    with closing(connect_reader(db)) as conn:
        verdicts = verify_ledger(conn, db, Settings())
    assert sorted(v.account for v in verdicts) == ["half", "hold", "sma"]
    assert all(v.divergence is None for v in verdicts)


async def test_a_funding_time_missed_while_disconnected_is_backfilled_from_history(
        tmp_path: Path, frame: pd.DataFrame, caplog: pytest.LogCaptureFixture) -> None:
    """The connection drops as the 08:00 candle closes: its announcement came on a dead
    connection, so the rate is taken from the history, and the ledger is the fault-free one."""
    clean, faulty = tmp_path / "clean.sqlite", tmp_path / "faulty.sqlite"
    await replay_daemon(frame.iloc[:600], clean, "buy_and_hold")
    with caplog.at_level("INFO"):
        await replay_daemon(frame.iloc[:600], faulty, "buy_and_hold", faults=(f"drop@{EIGHT_AM - HISTORY}",))
    assert "websocket connection lost" in caplog.text
    assert ledger_rows(faulty) == ledger_rows(clean) and funding_rows(faulty) == funding_rows(clean)
    eight = int(frame["open_time_ms"][EIGHT_AM]) + MINUTE
    assert sources(clean)[eight] == "ticker" and sources(faulty)[eight] == "history"
    assert "funding at 2023-03-01 08:00 backfilled from the exchange's history" in caplog.text
    assert len(funding_rows(clean)["funding"]) == 1  # the long paid at 08:00


async def test_a_restart_across_a_funding_time_equals_the_uninterrupted_run(tmp_path: Path,
                                                                              frame: pd.DataFrame) -> None:
    """Stopped at 07:49, restarted after 08:00 against a server that moved on: the 08:00
    candle comes over REST and its funding from the history, exactly as if never stopped."""
    straight, restarted = tmp_path / "straight.sqlite", tmp_path / "restarted.sqlite"
    await replay_daemon(frame.iloc[:600], straight, "buy_and_hold")
    await replay_daemon(frame.iloc[:470], restarted, "buy_and_hold")
    assert funding_rows(restarted)["funding"] == []
    await replay_daemon(frame.iloc[:600], restarted, "buy_and_hold", history=520)
    assert ledger_rows(restarted) == ledger_rows(straight) and funding_rows(restarted) == funding_rows(straight)


class NoFundingHistory(ReplayMarket):
    """An exchange that lists a perpetual but cannot give its funding history."""

    def funding_history(self, symbol: str, start_ms: int | None, end_ms: int | None,
                        limit: int) -> list[dict[str, str]]:
        return []


async def test_a_perpetual_without_funding_history_is_refused_before_anything_is_written(
        tmp_path: Path, frame: pd.DataFrame) -> None:
    from bot.daemon import Daemon

    market = NoFundingHistory([ReplaySeries.from_frame("BTCUSDT", frame.iloc[:700])], history=650)
    db = tmp_path / "l.sqlite"
    async with ReplayServer(market, speed=400) as server:
        with pytest.raises(UserError, match=r"BTCUSDT: the exchange has no funding history \(funding every 480 min "
                                            r"by the instrument\); a perpetual is not traded without its funding"):
            await asyncio.wait_for(Daemon(settings_for(server, db, "flat")).run(asyncio.Event()), 10)
    assert not db.exists()


async def test_a_perpetual_listed_less_than_a_funding_interval_ago_trades_without_history(
        tmp_path: Path, btc_candles: pd.DataFrame) -> None:
    """Listed at 02:00 (the replay's first candle), started at 05:39: no funding time has come yet."""
    from bot.daemon import Daemon

    young = btc_candles.iloc[120:420].reset_index(drop=True)
    market = NoFundingHistory([ReplaySeries.from_frame("BTCUSDT", young)], history=HISTORY)
    last_ms = int(market.open_time_ms[-1])
    async with ReplayServer(market, speed=400) as server:
        daemon = Daemon(settings_for(server, tmp_path / "l.sqlite", "buy_and_hold"))
        stop = asyncio.Event()
        daemon.listeners.append(lambda symbol, item, _: stop.set() if item.candle.open_time_ms >= last_ms else None)
        await asyncio.wait_for(daemon.run(stop), 30)
    assert daemon.report.symbols["BTCUSDT"].decisions == len(young) - HISTORY
    assert funding_rows(tmp_path / "l.sqlite")["funding"] == []


def test_shadow_run_says_so_in_one_line_and_exits_2(tmp_path: Path, frame: pd.DataFrame) -> None:
    """The same refusal through the command line: one line, status 2, no traceback."""
    script = tmp_path / "serve.py"
    data = tmp_path / "btc.csv"
    frame.iloc[:700].drop(columns="funding_rate").to_csv(data, index=False)
    script.write_text(
        "import asyncio, sys\n"
        "from bot.replay.market import ReplaySeries\n"
        "from bot.replay.server import ReplayServer\n"
        "from tests.bot.test_daemon_funding import NoFundingHistory\n"
        "async def main():\n"
        f"    market = NoFundingHistory([ReplaySeries.from_file('BTCUSDT', {str(data)!r})], history=650)\n"
        "    async with ReplayServer(market, speed=400) as server:\n"
        "        print(server.port, flush=True)\n"
        "        await asyncio.Event().wait()\n"
        "asyncio.run(main())\n")
    # the script lives in tmp_path: REPO on its path lets it import the tests' replay market
    server = subprocess.Popen([sys.executable, str(script)], cwd=REPO, stdout=subprocess.PIPE, text=True,
                              env=os.environ | {"PYTHONPATH": str(REPO)})
    try:
        port = int(server.stdout.readline())
        db = tmp_path / "l.sqlite"
        env = {"SHADOW_EXCHANGE__WS_URL": f"ws://127.0.0.1:{port}/v5/public/linear",
               "SHADOW_EXCHANGE__REST_URL": f"http://127.0.0.1:{port}", "SHADOW_LEDGER__DB_PATH": str(db),
               "SHADOW_DAEMON__STRATEGY": "flat"}
        done = subprocess.run([sys.executable, "-m", "bot", "run", "--log-level", "ERROR"], cwd=REPO,
                              env=os.environ | env, capture_output=True, text=True, timeout=60)
    finally:
        server.kill()
        server.wait()
    assert done.returncode == 2 and "Traceback" not in done.stderr
    lines = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "BTCUSDT: the exchange has no funding history" in lines[0]
    assert not db.exists()
