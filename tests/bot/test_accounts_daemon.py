"""Several paper accounts in one daemon, against the local Bybit replay server (real sockets,
real BTCUSDT candles): each account's ledger is the backtest of its strategy with its own
money, costs and limits, bit for bit, with and without faults and across SIGKILL restarts;
`shadow verify` agrees on every account; an account no longer configured is kept as it is."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pandas as pd
import pytest

from config.accounts import AccountSettings, trading_accounts
from config.errors import UserError
from config.settings import RiskSettings, Settings
from strategies.specs import build_strategy
from tests.bot.daemon_replay import (
    HISTORY,
    account_rows,
    decided,
    replay_daemon,
    replay_process,
    run_killing_shadow,
    shadow_run,
)
from trainer.evaluation.backtest import make_env, run_backtest
from trainer.verification.ledger import verify_ledger

N = 520
RISK = RiskSettings(max_drawdown=0.02, daily_loss_limit=0.01)  # tight: the guards act


@pytest.fixture(scope="module")
def frame(btc_candles: pd.DataFrame) -> pd.DataFrame:
    return btc_candles.iloc[1000:1000 + N].reset_index(drop=True)  # crosses midnight: a daily reset


@pytest.fixture(scope="module")
def exported_model(tmp_path_factory: pytest.TempPathFactory, decisive_ppo_model: Path) -> Path:
    """The decisive model with its network exported beside it: served with numpy alone."""
    import shutil

    from strategies.model_metadata import metadata_path
    from strategies.ppo import export_policy

    path = tmp_path_factory.mktemp("exported") / "model.zip"
    shutil.copy(decisive_ppo_model, path)
    shutil.copy(metadata_path(decisive_ppo_model), metadata_path(path))
    assert export_policy(path) is not None
    return path


def accounts_of(model: Path, exported: Path) -> tuple[AccountSettings, ...]:
    """Five accounts that differ in strategy, money, costs and limits; the same PPO model
    served through SB3 and from its export."""
    return (
        AccountSettings(name="ppo", strategy=f"ppo:{model}", slippage_bps=2.0),
        AccountSettings(name="ppo-export", strategy=f"ppo:{exported}", slippage_bps=2.0),
        AccountSettings(name="sma", strategy="sma:fast=5,slow=20", initial_balance=250.0, commission=0.001),
        AccountSettings(name="rsi", strategy="rsi:period=14", max_position_size=0.5, max_drawdown=0.0,
                        daily_loss_limit=0.0),
        AccountSettings(name="random", strategy="random:seed=3,trade_prob=0.2", daily_loss_limit=0.004),
    )


@pytest.fixture(scope="module")
def ledger(tmp_path_factory: pytest.TempPathFactory, frame: pd.DataFrame, decisive_ppo_model: Path,
           exported_model: Path) -> Path:
    db = tmp_path_factory.mktemp("accounts") / "shadow.sqlite"
    asyncio.run(replay_daemon(frame, db, "flat", risk=RISK, accounts=accounts_of(decisive_ppo_model, exported_model)))
    return db


def test_every_account_equals_the_backtest_of_its_strategy(ledger: Path, frame: pd.DataFrame,
                                                            decisive_ppo_model: Path, exported_model: Path) -> None:
    settings = Settings(risk=RISK, accounts=accounts_of(decisive_ppo_model, exported_model))
    rows = account_rows(ledger)
    with sqlite3.connect(ledger) as conn:  # all accounts' decisions at a candle: one transaction, one decided_ms
        assert conn.execute("SELECT count(*) FROM (SELECT open_time_ms FROM decisions GROUP BY open_time_ms "
                            "HAVING count(DISTINCT decided_ms) > 1)").fetchone()[0] == 0
    for account in trading_accounts(settings):
        strategy = build_strategy(account.strategy, lookback_window=20)
        result = run_backtest(strategy, make_env(frame, account.env), risk=account.risk)
        n = len(result.actions)  # the backtest cannot decide the last candle (it has no next one)
        decisions = [(t, a) for name, t, a, *_ in rows["decisions"] if name == account.name]
        assert len(decisions) == N - HISTORY == n + 1
        assert decisions[:n] == list(zip(result.times_ms[:-1].tolist(), result.actions.tolist(), strict=True))
        fills = [(t, price) for name, t, _, _, _, price, _ in rows["fills"] if name == account.name]
        assert [f for f in fills if f[0] < result.times_ms[-1]] == [(f.time_ms, f.price) for f in result.fills]
        equity = [e for name, _, e, _ in rows["equity"] if name == account.name]
        assert equity[:n] == result.decision_equity.tolist()
        events = [(t, kind) for name, t, kind, _ in rows["risk_events"] if name == account.name]
        assert events == [(e.time_ms, e.kind) for e in result.risk_events if e.time_ms < result.times_ms[-1]]
        assert len(result.trades) > 3, account.name
    ppo = [r[1:4] for r in rows["decisions"] if r[0] == "ppo"]
    assert ppo == [r[1:4] for r in rows["decisions"] if r[0] == "ppo-export"]  # the export decides as SB3 did
    kinds = {(name, kind) for name, _, kind, _ in rows["risk_events"]}
    assert {"ppo", "random"} <= {name for name, _ in kinds} and ("rsi", "max_drawdown") not in kinds


def test_verify_agrees_on_every_account(ledger: Path) -> None:
    from contextlib import closing

    from state.database import connect_reader

    with closing(connect_reader(ledger)) as conn:
        verdicts = verify_ledger(conn, ledger, Settings())
    assert sorted(v.account for v in verdicts) == ["ppo", "ppo-export", "random", "rsi", "sma"]
    assert all(v.divergence is None and v.decisions == N - HISTORY for v in verdicts)
    assert {v.settings_source for v in verdicts} == {"recorded by the daemon"}


@pytest.mark.parametrize("faults", [("drop@60", "duplicate@150"), ("skip@60:5", "reorder@200")],
                         ids=["drop-duplicate", "skip-reorder"])
async def test_faults_leave_every_account_as_a_fault_free_run_does(tmp_path: Path, frame: pd.DataFrame, ledger: Path,
                                                                    decisive_ppo_model: Path, exported_model: Path,
                                                                    faults: tuple[str, ...]) -> None:
    db = tmp_path / "faulty.sqlite"
    await replay_daemon(frame, db, "flat", faults=faults, risk=RISK,
                        accounts=accounts_of(decisive_ppo_model, exported_model))
    assert account_rows(db) == account_rows(ledger)


async def test_an_account_removed_from_the_config_is_kept_and_not_traded(
        tmp_path: Path, frame: pd.DataFrame, caplog: pytest.LogCaptureFixture) -> None:
    db = tmp_path / "shadow.sqlite"
    both = (AccountSettings(name="sma", strategy="sma:fast=5,slow=20"), AccountSettings(name="old", strategy="flat"))
    await replay_daemon(frame.iloc[:360], db, "flat", accounts=both)
    before = [r for r in account_rows(db)["decisions"] if r[0] == "old"]
    with caplog.at_level("WARNING"):
        await replay_daemon(frame, db, "flat", history=360, accounts=both[:1])
    assert "account old holds BTCUSDT history in the ledger but is not configured for it: kept as it is" in caplog.text
    rows = account_rows(db)
    assert [r for r in rows["decisions"] if r[0] == "old"] == before  # readable, unchanged, not traded
    assert [r[0] for r in rows["positions"]] == ["old", "sma"]
    assert len([r for r in rows["decisions"] if r[0] == "sma"]) == N - HISTORY


def test_a_live_trial_needs_a_retraining_daemon_with_an_incumbent() -> None:
    from bot.daemon import Daemon
    from config.settings import RetrainSettings

    with pytest.raises(UserError, match=r"retrain.live_trial_candles: 50: a live trial runs in a daemon that retrains"):
        Daemon(Settings(retrain=RetrainSettings(live_trial_candles=50)))
    with pytest.raises(UserError, match="needs an account trading the registry's promoted model"):
        Daemon(Settings(retrain=RetrainSettings(live_trial_candles=50, enabled=True),
                        accounts=(AccountSettings(name="sma", strategy="sma:fast=5,slow=20"),)))


async def test_an_unknown_strategy_or_registry_version_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    from bot.daemon import Daemon

    db = tmp_path / "shadow.sqlite"
    for strategy, says in (("nosuch", "account 'bad': unknown strategy 'nosuch'"),
                           ("registry:v0009", ("account 'bad': strategy 'registry:v0009' names a model the registry "
                                               "does not hold (it has no model at all"))):
        settings = Settings(accounts=(AccountSettings(name="bad", strategy=strategy),),
                            ledger={"db_path": db})  # type: ignore[arg-type]
        with pytest.raises(UserError, match=says.replace("(", r"\(")) as refused:
            await Daemon(settings).run(asyncio.Event())
        assert not db.exists()
        if strategy == "nosuch":  # the account-only choices are named beside the strategies
            assert str(refused.value).endswith(", or registry (the promoted model) or registry:VERSION")


def test_sigkill_restarts_leave_every_account_as_an_uninterrupted_run(tmp_path: Path, frame: pd.DataFrame) -> None:
    """``shadow run --account ...`` killed with SIGKILL at random moments and restarted: each
    account ends with exactly the ledger of a run that never stopped (every account's
    decisions at a candle commit together, so no kill leaves one account ahead of another)."""
    flags = {"sma": "sma:fast=5,slow=20", "rsi": "rsi:period=14", "random": "random:seed=3,trade_prob=0.2"}
    uninterrupted = tmp_path / "uninterrupted.sqlite"
    asyncio.run(replay_daemon(frame, uninterrupted, "flat",
                              accounts=tuple(AccountSettings(name=n, strategy=s) for n, s in flags.items())))
    db = tmp_path / "killed.sqlite"
    args = tuple(arg for name, spec in flags.items() for arg in ("--account", f"{name}={spec}"))
    assert run_killing_shadow(tmp_path, frame, db, "", decisions=len(flags) * (N - HISTORY), args=args) == 5
    rows = account_rows(db)
    assert rows == account_rows(uninterrupted)
    assert len(rows["trades"]) > 10


def test_a_daemon_serving_exported_policies_never_loads_torch(tmp_path: Path, frame: pd.DataFrame,
                                                              exported_model: Path) -> None:
    """Two PPO accounts served from their exports: ``shadow run`` decides without torch (none
    of its libraries is mapped into the process)."""
    import signal
    import time

    db = tmp_path / "shadow.sqlite"
    with replay_process(tmp_path, frame, db, "", speed=40.0) as env:
        daemon = shadow_run(env, "--account", f"a=ppo:{exported_model}", "--account", f"b=ppo:{exported_model}")
        deadline = time.monotonic() + 90
        while decided(db) < 2 * 100 and time.monotonic() < deadline and daemon.poll() is None:
            time.sleep(0.2)
        maps = Path(f"/proc/{daemon.pid}/maps").read_text()
        daemon.send_signal(signal.SIGTERM)
        _, err = daemon.communicate(timeout=30)
    assert daemon.returncode == 0, err.decode()
    assert decided(db) >= 2 * 100
    assert "python" in maps and "torch" not in maps
