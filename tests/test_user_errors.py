"""Every mistake a user can fix ends the same way, on every command: exactly one line on
stderr that starts with ``error:`` and names what is wrong, exit status 2, and nothing new
in the working directory.

Each case is its own process, run the way a pipe, journald or CI runs it: stderr piped,
no ``COLUMNS``, no terminal. The cases start side by side (a few at a time) when the first
test asks for its result, so the whole file takes seconds per core, not per case.
"""

from __future__ import annotations

import asyncio
import gzip
import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import NamedTuple

import pytest

from tests.conftest import BTC_SAMPLE, REPO

SHADOW = (sys.executable, "-m", "bot")
TRAIN_PPO = (sys.executable, "-m", "trainer.train_ppo")
RETRAIN = (sys.executable, "-m", "trainer.retrain")
PARALLEL = 3


class Case(NamedTuple):
    """One mistake: the command line (``{in}`` is the folder of prepared inputs), what the
    error line must say, and extra environment variables."""

    argv: tuple[str, ...]
    says: str
    env: tuple[tuple[str, str], ...] = ()


CASES: dict[str, Case] = {
    # usage: one line naming the command and the flag, with a pointer to --help
    "unknown command": Case((*SHADOW, "nosuch"), "shadow: no such command 'nosuch' (see shadow --help)"),
    "unknown flag": Case((*SHADOW, "trades", "--nope"), "shadow trades: no such option: --nope"),
    "missing option": Case((*SHADOW, "export"), "shadow export: missing option --table: table or view"),
    "missing argument": Case((*SHADOW, "models", "promote"), "missing argument VERSION: the version to serve"),
    "invalid choice": Case((*SHADOW, "models", "--status", "live"), "'live' is not one of candidate, promoted"),
    "value out of range": Case((*SHADOW, "trades", "--last", "0"), "--last"),
    "flag without value": Case((*SHADOW, "backtest", "--from"), "option '--from' requires an argument"),
    "seed script unknown flag": Case((*TRAIN_PPO, "--bogus"), "python -m trainer.train_ppo: no such option: --bogus"),
    # settings: field, value and the source that really set it
    "seed script n_envs": Case((*TRAIN_PPO, "--n-envs", "0"), "train.n_envs: 0 (set by --n-envs)"),
    "tune trials": Case((*SHADOW, "tune", "--trials", "0"), "tune.n_trials: 0 (set by --trials)"),
    "flag beside a config file": Case((*SHADOW, "tune", "--backend", "nosuch", "--config", "{in}/compute.toml"),
                                      "compute.backend: 'nosuch' (set by --backend)"),
    "value in the config file": Case((*SHADOW, "config", "--config", "{in}/risky.toml"),
                                     "risk.max_drawdown: 7 ([risk] max_drawdown in"),
    "environment variable": Case((*SHADOW, "config"), "env.commission: 'abc' (set by SHADOW_ENV__COMMISSION)",
                                 (("SHADOW_ENV__COMMISSION", "abc"),)),
    "config file not TOML": Case((*SHADOW, "config", "--config", "{in}/broken.toml"), "broken.toml: not valid TOML"),
    "config file missing": Case((*SHADOW, "status", "--config", "{in}/none.toml"), "none.toml: not found"),
    "unknown setting": Case((*SHADOW, "config", "--config", "{in}/typo.toml"), "unknown setting 'env.comission'"),
    "run symbols": Case((*SHADOW, "run", "--symbols", "btc"), "feed.symbols: ['btc'] (set by --symbols)"),
    "run interval": Case((*SHADOW, "run", "--interval", "7m"), "feed.interval: '7m' (set by --interval)"),
    "run log format": Case((*SHADOW, "run", "--log-format", "xml"), "service.log_format: 'xml' (set by --log-format)"),
    "run log level": Case((*SHADOW, "run", "--log-level", "LOUD"), "--log-level 'LOUD'"),
    "evaluate window": Case((*SHADOW, "evaluate", "--train-candles", "10"), "(set by --train-candles)"),
    "evaluate folds do not fit": Case((*SHADOW, "evaluate", "--train-candles", "30000", "--test-candles", "2000"),
                                      "cannot hold one fold of train_candles=30000"),
    "signal check too few candles": Case((*SHADOW, "evaluate", "--signal", "--interval", "1h", "--horizons", "1,100"),
                                         "504 candles are too few for 5 fold(s)"),
    "evaluate unknown baseline": Case((*SHADOW, "evaluate"), "unknown strategy 'nosuch'",
                                      (("SHADOW_EVALUATION__BASELINES", '["nosuch"]'),)),
    "fetch symbol": Case((*SHADOW, "fetch", "--symbol", "btcusdt"), "train.symbol: 'btcusdt' (set by --symbol)"),
    # nothing is created before the inputs are accepted (the default ledger is ./shadow.sqlite)
    "run unknown strategy": Case((*SHADOW, "run", "--strategy", "nosuch"), "unknown strategy 'nosuch'"),
    "run missing model": Case((*SHADOW, "run", "--strategy", "ppo:{in}/none.zip"), "none.zip"),
    "run on a non-ledger": Case((*SHADOW, "run", "--db", "{in}/text.sqlite"), "not a usable SQLite database"),
    "run on a newer ledger": Case((*SHADOW, "run", "--db", "{in}/newer.sqlite"), "is newer than this Shadow"),
    "publish a missing model": Case((*SHADOW, "models", "publish", "{in}/none.zip"), "none.zip: no such model file"),
    "backup a non-ledger": Case((*SHADOW, "backup", "--db", "{in}/text.sqlite"), "not a usable SQLite database"),
    "demo baseline": Case((*SHADOW, "demo", "--timesteps", "0", "--baseline", "nosuch"), "unknown strategy 'nosuch'"),
    "demo candles": Case((*SHADOW, "demo", "--candles", "1"), "--candles 1: must be between 2 and"),
    # ledgers
    "missing ledger": Case((*SHADOW, "trades", "--db", "{in}/none.sqlite"), "none.sqlite: no such file"),
    "non-SQLite ledger": Case((*SHADOW, "status", "--db", "{in}/text.sqlite"), "not a usable SQLite database"),
    "newer ledger": Case((*SHADOW, "models", "--db", "{in}/newer.sqlite"), "schema version 99 is newer"),
    "migrate a newer ledger": Case((*SHADOW, "migrate", "--db", "{in}/newer.sqlite"), "schema version 99 is newer"),
    "retrain log, no ledger": Case((*SHADOW, "retrain", "--db", "{in}/none.sqlite"), "none.sqlite: no such file"),
    "retrain now, no ledger": Case((*SHADOW, "retrain", "--now", "--db", "{in}/none.sqlite"),
                                   "none.sqlite: no such file"),
    "export unknown table": Case((*SHADOW, "export", "--table", "nosuch", "--db", "{in}/ledger.sqlite"),
                                 "no table or view 'nosuch'"),
    "export format": Case((*SHADOW, "export", "--table", "trades", "--format", "xml", "--db", "{in}/ledger.sqlite"),
                          "'xml' is not csv or parquet"),
    "trades since": Case((*SHADOW, "trades", "--since", "someday", "--db", "{in}/ledger.sqlite"),
                         "'someday' is not a date"),
    "verify, no ledger": Case((*SHADOW, "verify", "--db", "{in}/none.sqlite"), "none.sqlite: no such file"),
    "verify bad date": Case((*SHADOW, "verify", "--db", "{in}/ledger.sqlite", "--from", "someday"),
                            "--from 'someday' is not a date"),
    "ui, no ledger": Case((*SHADOW, "ui", "--db", "{in}/none.sqlite", "--http", "0"), "none.sqlite: no such file"),
    "ui on a non-ledger": Case((*SHADOW, "ui", "--db", "{in}/text.sqlite", "--http", "0"),
                               "not a usable SQLite database"),
    "ui on a newer ledger": Case((*SHADOW, "ui", "--db", "{in}/newer.sqlite", "--http", "0"),
                                 "schema version 99 is newer"),
    "ui address": Case((*SHADOW, "ui", "--db", "{in}/ledger.sqlite", "--http", "localhost:http"),
                       "--http 'localhost:http'"),
    "ui public address": Case((*SHADOW, "ui", "--db", "{in}/ledger.sqlite", "--http", "0.0.0.0:0"),
                              "--http 0.0.0.0:0: not a loopback address"),
    "run public address": Case((*SHADOW, "run", "--http", "example.org:9108"), "not a loopback address"),
    "run unknown alert URL": Case((*SHADOW, "run", "--strategy", "flat"), "is not a notification URL",
                                  (("SHADOW_ALERTS__URLS", '["nosuch://user:SECRET@host/token"]'),)),
    "promote unknown version": Case((*SHADOW, "models", "promote", "v0009", "--db", "{in}/ledger.sqlite"),
                                    "no model 'v0009'"),
    # candle files and backtests
    "backtest corrupt candles": Case((*SHADOW, "backtest", "--candles", "{in}/corrupt.csv"), "corrupt.csv"),
    "backtest missing candles": Case((*SHADOW, "backtest", "--candles", "{in}/none.csv"), "none.csv: file not found"),
    "backtest unknown strategy": Case((*SHADOW, "backtest", "--strategy", "nosuch"), "unknown strategy 'nosuch'"),
    "backtest bad date": Case((*SHADOW, "backtest", "--from", "2023-13-45"), "--from '2023-13-45' is not a date"),
    "backtest non-ledger": Case((*SHADOW, "backtest", "--db", "{in}/text.sqlite"), "not a usable SQLite database"),
    "backtest symbol without ledger": Case((*SHADOW, "backtest", "--symbol", "BTCUSDT"), "they need --db"),
    "replay corrupt candles": Case((*SHADOW, "replay-server", "--data", "{in}/corrupt.csv", "--symbol", "BTCUSDT"),
                                   "corrupt.csv"),
    "replay unknown fault": Case((*SHADOW, "replay-server", "--data", str(BTC_SAMPLE), "--symbol", "BTCUSDT",
                                  "--fault", "nosuch@3"), "nosuch"),
    # training
    "train too few candles": Case((*SHADOW, "train", "--num-candles", "10"), "--num-candles 10 is too few"),
    "train corrupt data": Case((*SHADOW, "train", "--data", "{in}/corrupt.csv", "--timeframe", "1m"), "corrupt.csv"),
    "train shared alone": Case((*SHADOW, "train", "--shared"), "--shared trains one model on several symbols"),
    "tune corrupt data": Case((*SHADOW, "tune", "--data", "{in}/corrupt.csv"), "corrupt.csv"),
    # the retraining process (started by the daemon, but a command line all the same)
    "retrain process without job": Case(RETRAIN, "usage: python -m trainer.retrain JOB.json"),
    "retrain process missing job": Case((*RETRAIN, "{in}/none.json"), "none.json"),
    "retrain process bad job": Case((*RETRAIN, "{in}/broken.json"), "broken.json"),
}


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bad (and the few good) files the cases point at, outside their working folders."""
    from state.ledger import Ledger
    from state.migrations import LATEST_VERSION

    folder = tmp_path_factory.mktemp("inputs")
    rows = gzip.decompress(BTC_SAMPLE.read_bytes()).decode().splitlines()[:400]
    fields = rows[300].split(",")
    fields[2], fields[3] = fields[3], fields[2]  # high below low
    rows[300] = ",".join(fields)
    (folder / "corrupt.csv").write_text("\n".join(rows) + "\n")
    (folder / "text.sqlite").write_text("these are notes, not a database\n")
    (folder / "compute.toml").write_text("[compute]\nworkers = 2\n")
    (folder / "risky.toml").write_text("[risk]\nmax_drawdown = 7\n")
    (folder / "broken.toml").write_text("[env\n")
    (folder / "typo.toml").write_text("[env]\ncomission = 0.001\n")
    (folder / "broken.json").write_text("{not json")

    async def create(path: Path) -> None:
        async with await Ledger.open(path):
            pass

    asyncio.run(create(folder / "ledger.sqlite"))
    shutil.copy(folder / "ledger.sqlite", folder / "newer.sqlite")
    with sqlite3.connect(folder / "newer.sqlite") as conn:
        conn.execute(f"PRAGMA user_version = {max(99, LATEST_VERSION + 1)}")
    return folder


@pytest.fixture(scope="module")
def runs(inputs: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Future]]:
    """Every case started, a few at a time, each in an empty working folder of its own."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHADOW_") and k not in ("COLUMNS", "LINES")}
    env["PYTHONPATH"] = str(REPO)
    with ThreadPoolExecutor(PARALLEL) as pool:
        yield {name: pool.submit(_run, case, inputs, tmp_path_factory.mktemp("cwd"), env)
               for name, case in CASES.items()}


def _run(case: Case, inputs: Path, cwd: Path, env: dict[str, str]) -> tuple[subprocess.CompletedProcess[str], Path]:
    argv = [part.replace("{in}", str(inputs)) for part in case.argv]
    done = subprocess.run(argv, cwd=cwd, env=env | dict(case.env), capture_output=True, text=True, timeout=300,
                          stdin=subprocess.DEVNULL)
    return done, cwd


@pytest.mark.parametrize("name", list(CASES))
def test_a_user_error_is_one_line_exit_2_and_writes_nothing(name: str, runs: dict[str, Future]) -> None:
    done, cwd = runs[name].result()
    lines = done.stderr.splitlines()
    assert done.returncode == 2, done.stderr
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    assert CASES[name].says in lines[0]
    assert sorted(p.name for p in cwd.iterdir()) == []


def test_a_ledger_in_a_read_only_folder_is_one_line(inputs: Path, tmp_path: Path) -> None:
    """Root writes into any folder whatever its mode, so as root (CI) the folder is made
    read-only by a read-only bind mount in a private mount namespace instead."""
    folder = tmp_path / "ro"
    folder.mkdir()
    shutil.copy(inputs / "ledger.sqlite", folder / "ledger.sqlite")
    argv = [*SHADOW, "trades", "--db", str(folder / "ledger.sqlite")]
    if os.geteuid() == 0:
        mount = f"mount --bind {folder} {folder} && mount -o remount,ro,bind {folder} {folder} && exec \"$@\""
        argv = ["unshare", "--mount", "sh", "-c", mount, "sh", *argv]
    folder.chmod(0o555)
    try:
        done = subprocess.run(argv, cwd=tmp_path, capture_output=True, text=True, timeout=120,
                              env={k: v for k, v in os.environ.items() if k != "COLUMNS"} | {"PYTHONPATH": str(REPO)})
    finally:
        folder.chmod(0o755)
    lines = done.stderr.splitlines()
    assert done.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: ledger "), done.stderr
