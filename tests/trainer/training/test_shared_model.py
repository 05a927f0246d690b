"""shadow train --symbols A,B --shared: one model on two real markets with every output of
shadow train, per-symbol splits without leakage, resume, the registry serving it for both
symbols, and the combinations refused with one line."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from bot.cli import app
from bot.commands.models import publish_file
from bot.serving import account_strategy
from config.errors import UserError
from config.settings import DaemonSettings, load_settings
from env.candles import load_candles
from state.ledger import Ledger
from strategies.model_metadata import load_metadata, metadata_path
from strategies.ppo import PPOStrategy
from tests.conftest import PREFIX
from tests.trainer.workdir import working_dir
from trainer.evaluation.backtest import make_env, run_backtest
from trainer.jobs.backends import LocalBackend
from trainer.jobs.board import Board
from trainer.models.store import promoted_model
from trainer.training.shared_model import prepare_shared, run_shared

LENGTHS = {"BTCUSDT": 2500, "ETHUSDT": 2000}
FLAGS = ["--data", "{symbol}.csv", "--num-candles", "3000", "--n-envs", "2", "--n-steps", "32", "--batch-size", "32",
         "--n-epochs", "1", "--episode-length", "40", "--checkpoint-freq", "64", "--eval-freq", "64", "--no-progress",
         "--workers", "1"]
SHARED = ["train", "--symbols", "BTCUSDT,ETHUSDT", "--shared", *FLAGS]
MODELS = Path("models") / "ppo_crypto_model"
FINAL = MODELS / "ppo_crypto_model_final.zip"


def shadow(*args: str) -> str:
    result = CliRunner().invoke(app, list(args))
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    assert result.exit_code == 0, result.output
    return result.output


def write_markets(folder: Path, btc: pd.DataFrame, eth: pd.DataFrame) -> None:
    """The first candles of the two real samples (March and October 2023) as {ID}.csv."""
    for market, frame in (("BTCUSDT", btc), ("ETHUSDT", eth)):
        frame.iloc[:LENGTHS[market]][["timestamp", "open", "high", "low", "close", "volume"]].to_csv(
            folder / f"{market}.csv", index=False)


@pytest.fixture(scope="module")
def shared_run(tmp_path_factory: pytest.TempPathFactory, btc_candles: pd.DataFrame,
               eth_candles: pd.DataFrame) -> tuple[Path, str]:
    """One shared training run of 128 steps through the command line: its folder and output."""
    folder = tmp_path_factory.mktemp("shared")
    write_markets(folder, btc_candles, eth_candles)
    with working_dir(folder):
        output = shadow(*SHARED, "--total-timesteps", "128")
    return folder, output


def test_one_model_gets_every_output_of_shadow_train(shared_run: tuple[Path, str]) -> None:
    folder, output = shared_run
    models = folder / MODELS
    for path in (models / "checkpoints" / "ppo_model_64_steps.zip", models / "checkpoints" / "ppo_model_128_steps.zip",
                 models / "best" / "best_model.zip", folder / FINAL):
        assert path.is_file() and metadata_path(path).is_file(), path
    for path in (folder / "logs" / "env_0" / "monitor.csv", folder / "logs" / "env_1" / "monitor.csv",
                 folder / "data" / "BTCUSDT" / "test_data.csv", folder / "data" / "ETHUSDT" / "test_data.csv"):
        assert path.is_file(), path
    assert list((folder / "logs" / "tensorboard").glob("PPO_1/events.out.tfevents.*"))
    assert not (models / "BTCUSDT").exists() and not (folder / "data" / "test_data.csv").exists()
    evaluations = np.load(folder / "logs" / "eval" / "evaluations.npz")
    assert evaluations["timesteps"].tolist() == [64, 128]
    assert evaluations["results"].shape == (2, 2)  # each evaluation: one episode per symbol
    log = (folder / "ppo_training.log").read_text()
    # The worker's lines reach the driver's log, with the paths the files have now.
    assert f"model (128 steps) saved: {FINAL}" in log and f"checkpoint saved: {MODELS}/checkpoints" in log
    assert "shadow-job-" not in log
    assert re.search(r"shared BTCUSDT\+ETHUSDT: 128 steps, mean validation return [+-]\d+\.\d\d%", output), output
    for market in ("BTCUSDT", "ETHUSDT"):  # each symbol's return beside its skill figures
        assert re.search(rf"  {market}: validation return [+-]\d+\.\d\d% \(timing [+-]\d+\.\d\d%, buy & hold "
                         r"[+-]\d+\.\d\d%\), long \d+% / short \d+% \(net [+-]\d\.\d\d\), \d+ trades, fees "
                         r"\d+\.\d\d% of capital, turnover \d+\.\dx", output), output
    assert f"final model: {FINAL} (128 steps)" in output


def test_metadata_lists_both_symbols_and_each_split_is_chronological(
    shared_run: tuple[Path, str], btc_candles: pd.DataFrame, eth_candles: pd.DataFrame
) -> None:
    folder, _ = shared_run
    meta = load_metadata(folder / FINAL)
    assert meta.symbol == "BTC/USDT:USDT,ETH/USDT:USDT" and meta.shared
    assert meta.market_ids() == ["BTCUSDT", "ETHUSDT"] and meta.num_timesteps == 128
    markets = meta.extra["markets"]
    assert list(markets) == ["BTCUSDT", "ETHUSDT"]
    for market, frame in (("BTCUSDT", btc_candles), ("ETHUSDT", eth_candles)):
        times = frame["open_time_ms"].iloc[:LENGTHS[market]]
        info = markets[market]
        assert info["data_source"] == f"{market}.csv"
        train, validation, test = (info["split"][part] for part in ("train", "validation", "test"))
        assert train["start_ms"] == times.iloc[PREFIX]
        assert train["end_ms"] < validation["start_ms"] <= validation["end_ms"] < test["start_ms"]
        assert train["n_candles"] + validation["n_candles"] + test["n_candles"] == LENGTHS[market] - PREFIX
        saved = load_candles(folder / "data" / market / "test_data.csv")
        assert saved["open_time_ms"].iloc[PREFIX] == test["start_ms"]
        assert saved["open_time_ms"].iloc[-1] == times.iloc[-1]
    btc_train, eth_train = markets["BTCUSDT"]["split"]["train"], markets["ETHUSDT"]["split"]["train"]
    assert meta.data_range == {"start_ms": btc_train["start_ms"], "end_ms": eth_train["end_ms"],
                               "n_candles": btc_train["n_candles"] + eth_train["n_candles"]}


def test_the_final_model_trades_both_test_files(shared_run: tuple[Path, str]) -> None:
    folder, _ = shared_run
    model = PPOStrategy.load(folder / FINAL, lookback_window=20)
    env_settings = load_settings(None).env
    for market in LENGTHS:
        test = load_candles(folder / "data" / market / "test_data.csv")
        result = run_backtest(model, make_env(test, env_settings))
        n_traded = load_metadata(folder / FINAL).extra["markets"][market]["split"]["test"]["n_candles"]
        assert len(result.actions) == n_traded - 1 or result.terminated
        assert set(result.actions.tolist()) <= {0, 1, 2, 3} and np.isfinite(result.equity).all()


def test_resume_continues_the_shared_model_and_its_logs(shared_run: tuple[Path, str], tmp_path: Path) -> None:
    shutil.copytree(shared_run[0], tmp_path, dirs_exist_ok=True)
    monitor = tmp_path / "logs" / "env_1" / "monitor.csv"
    episodes_before = monitor.read_text().splitlines()[2:]
    with working_dir(tmp_path):
        shadow(*SHARED, "--total-timesteps", "64", "--resume", str(FINAL))
    meta = load_metadata(tmp_path / FINAL)
    assert meta.num_timesteps == 192 and meta.extra["resumed_from"] == str(FINAL)
    assert (tmp_path / MODELS / "checkpoints" / "ppo_model_192_steps.zip").is_file()
    assert np.load(tmp_path / "logs" / "eval" / "evaluations.npz")["timesteps"].tolist() == [64, 128, 192]
    assert monitor.read_text().splitlines()[2:2 + len(episodes_before)] == episodes_before
    runs = sorted(p.name for p in (tmp_path / "logs" / "tensorboard").iterdir())
    assert runs == ["PPO_1"] and len(list((tmp_path / "logs" / "tensorboard" / "PPO_1").iterdir())) == 2
    with working_dir(tmp_path):  # a new run after them is a new TensorBoard run, as for one symbol
        shadow(*SHARED, "--total-timesteps", "64")
    assert sorted(p.name for p in (tmp_path / "logs" / "tensorboard").iterdir()) == ["PPO_1", "PPO_2"]


def test_the_job_runs_quietly_as_one_row_of_the_table(
    in_tmp: Path, btc_candles: pd.DataFrame, eth_candles: pd.DataFrame
) -> None:
    write_markets(in_tmp, btc_candles, eth_candles)
    settings = load_settings(None, train={"data": "{symbol}.csv", "n_envs": 2, "n_steps": 32, "batch_size": 32,
                                          "n_epochs": 1, "episode_length": 40, "total_timesteps": 64,
                                          "progress": True})
    job = prepare_shared(settings, ["BTC/USDT:USDT", "ETH/USDT:USDT"])
    assert job.settings.train.progress is False  # no progress bar from the worker under the live table
    board = Board("t")
    backend = LocalBackend(1)
    try:
        outcome = run_shared(job, backend, board)
    finally:
        backend.close()
    assert outcome.ok, outcome.error
    (row,) = board.rows.values()
    assert (row.key, row.status, row.value) == ("shared BTCUSDT+ETHUSDT", "done", outcome.result.validation_return)
    assert row.value == pytest.approx(sum(outcome.result.validation_returns.values()) / 2)
    assert row.detail.startswith("64 steps (BTCUSDT ")


def test_published_shared_model_serves_both_symbols(shared_run: tuple[Path, str], tmp_path: Path) -> None:
    folder, _ = shared_run
    btc_only = tmp_path / "btc.zip"  # a per-symbol model: the same weights, metadata of one market
    shutil.copy(folder / FINAL, btc_only)
    meta = json.loads(metadata_path(folder / FINAL).read_text()) | {"symbol": "BTC/USDT:USDT"}
    metadata_path(btc_only).write_text(json.dumps(meta))
    settings = load_settings(None, retrain={"registry_dir": tmp_path / "registry"})
    db = tmp_path / "ledger.sqlite"
    first = asyncio.run(publish_file(db, settings, btc_only, promote=True))
    assert first.startswith("v0001 registered for BTCUSDT 1m") and "v0001 promoted for BTCUSDT 1m" in first
    second = asyncio.run(publish_file(db, settings, folder / FINAL, promote=True))
    assert "v0002 registered for every symbol 1m (shared model of BTCUSDT,ETHUSDT)" in second
    assert "v0002 promoted for every symbol 1m; v0001 retired" in second  # else BTCUSDT's own model would win

    async def registry() -> list:
        async with await Ledger.open(db) as ledger:
            return await ledger.registry.list_models()

    models = asyncio.run(registry())
    shared = next(m for m in models if m.version == "v0002")
    assert (shared.symbol, shared.interval, shared.metrics) == (None, "1m", {"symbols": "BTCUSDT,ETHUSDT"})
    assert next(m for m in models if m.version == "v0001").status == "retired"
    daemon = DaemonSettings(strategy="registry")
    for market in LENGTHS:
        assert promoted_model(models, market, "1m") == shared
        assert account_strategy(daemon.strategy, daemon.fallback, models, market, "1m", 20,
                                account="main").model_version == "v0002"


@pytest.mark.parametrize(("flags", "message"), [
    (["train", "--shared", *FLAGS], "--shared trains one model on several symbols: it needs --symbols"),
    (["train", "--symbols", "BTCUSDT", "--shared", *FLAGS], "--symbols BTCUSDT is one"),
    ([*SHARED, "--n-envs", "1"], r"with 2 symbols needs --n-envs 2 or more .* --n-envs is 1"),
    ([*SHARED, "--data", "all.csv"], r"--data all.csv: with --symbols, put \{symbol\} in the path"),
    ([*SHARED, "--resume", "missing.zip"], "--resume missing.zip: no such checkpoint file"),
    ([*SHARED, "--data", "{symbol}_none.csv"], "BTCUSDT_none.csv"),
])
def test_bad_combinations_fail_before_any_work(in_tmp: Path, flags: list[str], message: str) -> None:
    result = CliRunner().invoke(app, flags)
    assert isinstance(result.exception, UserError), result.output
    assert re.search(message, str(result.exception)), str(result.exception)
    assert not (in_tmp / "models").exists() and not (in_tmp / "data").exists()


def test_a_symbol_too_short_fails_before_any_test_file_is_written(
    in_tmp: Path, btc_candles: pd.DataFrame, eth_candles: pd.DataFrame
) -> None:
    write_markets(in_tmp, btc_candles, eth_candles.iloc[:260])
    result = CliRunner().invoke(app, [*SHARED, "--total-timesteps", "64"])
    assert isinstance(result.exception, UserError)
    assert "ETHUSDT.csv: 260 candles is too short" in str(result.exception)
    assert not (in_tmp / "data").exists() and not (in_tmp / "models").exists()


def test_resume_refuses_a_model_of_other_symbols(shared_run: tuple[Path, str], tmp_path: Path) -> None:
    folder, _ = shared_run
    shutil.copytree(folder, tmp_path, dirs_exist_ok=True)
    btc_only = tmp_path / "btc.zip"
    shutil.copy(tmp_path / FINAL, btc_only)
    meta = json.loads(metadata_path(btc_only.parent / FINAL).read_text()) | {"symbol": "BTC/USDT:USDT"}
    metadata_path(btc_only).write_text(json.dumps(meta))
    cases = [
        ([*SHARED, "--resume", "btc.zip"],
         "--resume btc.zip is a model of one symbol, BTCUSDT, not of BTCUSDT,ETHUSDT"),
        (["train", "--symbols", "ETHUSDT,BTCUSDT", "--shared", *FLAGS, "--resume", str(FINAL)],
         f"--resume {FINAL} is a shared model of BTCUSDT,ETHUSDT, not of ETHUSDT,BTCUSDT"),
        (["train", *FLAGS, "--data", "BTCUSDT.csv", "--resume", str(FINAL)],
         f"--resume {FINAL}: a shared model of BTCUSDT,ETHUSDT; continue it with --symbols BTCUSDT,ETHUSDT --shared"),
        (["train", "--symbols", "BTCUSDT,ETHUSDT", *FLAGS, "--resume", str(FINAL)],
         "cannot be combined with --symbols (add --shared to continue a shared model)"),
    ]
    with working_dir(tmp_path):
        for flags, message in cases:
            result = CliRunner().invoke(app, flags)
            assert isinstance(result.exception, UserError), result.output
            assert message in str(result.exception), str(result.exception)
    assert load_metadata(tmp_path / FINAL).num_timesteps == 128


def test_ray_backend_delivers_the_same_model_and_files(shared_run: tuple[Path, str], tmp_path: Path) -> None:
    ray = pytest.importorskip("ray", reason="the optional 'ray' extra is not installed (pip install -e '.[ray]')")
    import torch
    from stable_baselines3 import PPO

    folder, _ = shared_run
    for market in LENGTHS:
        shutil.copy(folder / f"{market}.csv", tmp_path)
    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False)  # from here: its workers import this checkout
    try:
        with working_dir(tmp_path):
            shadow(*SHARED, "--total-timesteps", "128", "--backend", "ray")
    finally:
        ray.shutdown()
    produced = {p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file() and "tensorboard" not in p.parts}
    expected = {p.relative_to(folder) for p in folder.rglob("*") if p.is_file() and "tensorboard" not in p.parts}
    assert produced == expected
    ours, theirs = (PPO.load(root / FINAL, device="cpu").policy.state_dict() for root in (tmp_path, folder))
    assert all(torch.equal(ours[name], theirs[name]) for name in theirs)
