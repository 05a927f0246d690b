"""train_ppo end to end on real candles (data/sample): every output file, metadata, loading
and acting, resume, Ctrl-C, and the bad-input paths that must fail before any work."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from trainer_fakes import FakeBybit
from typer.testing import CliRunner
from workdir import working_dir

from bot.cli import app
from config.errors import UserError
from config.settings import load_settings
from env.candles import candles_to_seed_csv, load_candles, resample_candles
from env.crypto_trading_env import CryptoTradingEnv
from env.features import FEATURE_SPEC_VERSION
from strategies.model_metadata import ModelMismatchError, load_metadata, metadata_path
from tests.conftest import PREFIX
from trainer.training.model_io import load_ppo
from trainer.training.single_symbol import train

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "data" / "sample" / "btcusdt_1m_2023-03.csv.gz"
SMALL = ["--data", str(SAMPLE), "--num-candles", "3000", "--total-timesteps", "64", "--n-envs", "2",
         "--n-steps", "64", "--batch-size", "64", "--n-epochs", "2", "--checkpoint-freq", "128",
         "--eval-freq", "128", "--episode-length", "50", "--vec-env", "dummy", "--no-progress"]


def shadow(*args: str) -> None:
    result = CliRunner().invoke(app, list(args))
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    assert result.exit_code == 0, result.output


@pytest.fixture(scope="module")
def short_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One small real training run through ``shadow train``; its directory."""
    workdir = tmp_path_factory.mktemp("short_run")
    with working_dir(workdir):
        shadow("train", *SMALL, "--total-timesteps", "256", "--seed", "3")
    return workdir


def test_short_run_writes_every_seed_output(short_run: Path) -> None:
    models = short_run / "models" / "ppo_crypto_model"
    expected = [
        models / "checkpoints" / "ppo_model_128_steps.zip",
        models / "checkpoints" / "ppo_model_256_steps.zip",
        models / "best" / "best_model.zip",
        models / "ppo_crypto_model_final.zip",
        short_run / "logs" / "eval" / "evaluations.npz",
        short_run / "logs" / "env_0" / "monitor.csv",
        short_run / "logs" / "env_1" / "monitor.csv",
        short_run / "data" / "test_data.csv",
    ]
    for path in expected:
        assert path.is_file(), path
        if path.suffix == ".zip":
            assert metadata_path(path).is_file(), f"no metadata beside {path}"
    assert list((short_run / "logs" / "tensorboard").glob("PPO_1/events.out.tfevents.*"))
    log_text = (short_run / "ppo_training.log").read_text()
    assert "final model (256 steps) saved" in log_text and "checkpoint saved" in log_text
    assert "convergence on the validation slice: argmax flips on" in log_text
    evaluations = np.load(short_run / "logs" / "eval" / "evaluations.npz")
    assert evaluations["timesteps"].tolist() == [128, 256]


def test_convergence_diagnostics_reach_tensorboard_and_the_final_models_metadata(short_run: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    (events,) = (short_run / "logs" / "tensorboard" / "PPO_1").glob("events.out.tfevents.*")
    board = EventAccumulator(str(events))
    board.Reload()
    assert {"convergence/flip_rate", "convergence/entropy", "convergence/round_trips_per_1000"} <= set(
        board.Tags()["scalars"])
    meta = load_metadata(short_run / "models" / "ppo_crypto_model" / "ppo_crypto_model_final.zip")
    assert set(meta.diagnostics) >= {"entropy", "entropy_ratio", "flip_rate", "round_trips_per_1000", "fee_share"}
    assert meta.diagnostics["decisions"] > 0 and meta.action_mode == "target" and meta.decision_stride == 1


def test_an_unconverged_policy_is_one_warning_line(short_run: Path) -> None:
    """256 timesteps are far too few: the log says so in one line."""
    warnings = [line for line in (short_run / "ppo_training.log").read_text().splitlines()
                if "WARNING" in line and "has not converged" in line]
    assert len(warnings) == 1 and "argmax flips on" in warnings[0]


def test_every_model_carries_its_metadata(short_run: Path) -> None:
    final = short_run / "models" / "ppo_crypto_model" / "ppo_crypto_model_final.zip"
    meta = load_metadata(final)
    assert meta.feature_spec["version"] == FEATURE_SPEC_VERSION and meta.lookback_window == 20
    assert (meta.symbol, meta.timeframe, meta.seed, meta.num_timesteps) == ("BTC/USDT", "1m", 3, 256)
    assert meta.env["commission"] == 0.0004 and meta.env["reward"]["realized"] == 1.0
    assert meta.hyperparameters | {"device": "cpu"} == meta.hyperparameters
    expected = {"learning_rate": 3e-4, "batch_size": 64, "n_epochs": 2, "n_steps": 64, "n_envs": 2}
    assert expected.items() <= meta.hyperparameters.items()
    assert {"torch", "stable-baselines3", "numpy", "python"} <= meta.versions.keys()
    split = meta.extra["split"]
    assert meta.data_range == split["train"]
    train, validation, test = split["train"], split["validation"], split["test"]
    assert train["end_ms"] < validation["start_ms"] <= validation["end_ms"] < test["start_ms"]
    test = load_candles(short_run / "data" / "test_data.csv")
    assert test["open_time_ms"].iloc[-1] == split["test"]["end_ms"]
    checkpoint = load_metadata(short_run / "models" / "ppo_crypto_model" / "checkpoints" / "ppo_model_128_steps.zip")
    assert checkpoint.num_timesteps == 128


def test_final_model_loads_and_trades_the_test_csv_like_the_seed_backtest(short_run: Path) -> None:
    model = load_ppo(short_run / "models" / "ppo_crypto_model" / "ppo_crypto_model_final.zip", lookback_window=20)
    test_df = load_candles(short_run / "data" / "test_data.csv")
    env = CryptoTradingEnv(test_df, initial_balance=100.0)
    obs, info = env.reset()
    done, actions = False, []
    while not done:
        action, _ = model.predict(obs, deterministic=True)
        actions.append(int(action))
        obs, _reward, terminated, truncated, info = env.step(action)
        done = terminated or truncated
    meta = load_metadata(short_run / "models" / "ppo_crypto_model" / "ppo_crypto_model_final.zip")
    assert len(actions) == meta.extra["split"]["test"]["n_candles"] - 1 or terminated
    assert set(actions) <= {0, 1, 2, 3} and np.isfinite(info["equity"])


def test_resume_continues_step_count_checkpoints_and_logs(
    short_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shutil.copytree(short_run, tmp_path, dirs_exist_ok=True)
    monkeypatch.chdir(tmp_path)
    monitor = tmp_path / "logs" / "env_0" / "monitor.csv"
    rows_before = len(monitor.read_text().splitlines())
    checkpoint = "models/ppo_crypto_model/checkpoints/ppo_model_256_steps.zip"
    settings = load_settings(None, train={"data": SAMPLE, "num_candles": 3000, "n_envs": 2, "checkpoint_freq": 128,
                                          "eval_freq": 128, "total_timesteps": 128, "resume": checkpoint,
                                          "episode_length": 50,
                                          "vec_env": "dummy", "progress": False})
    result = train(settings)
    assert result.num_timesteps == 384
    assert (tmp_path / "models/ppo_crypto_model/checkpoints/ppo_model_384_steps.zip").is_file()
    meta = load_metadata(result.final_model)
    assert meta.num_timesteps == 384 and meta.extra["resumed_from"] == checkpoint
    assert meta.hyperparameters["n_steps"] == 64  # the checkpoint's, not the flag default
    lines = monitor.read_text().splitlines()
    assert len(lines) > rows_before and lines[0].startswith("#") and sum(line.startswith("#") for line in lines) == 1
    runs = sorted(p.name for p in (tmp_path / "logs" / "tensorboard").iterdir())
    assert runs == ["PPO_1"] and len(list((tmp_path / "logs/tensorboard/PPO_1").glob("events.*"))) == 2
    assert np.load(tmp_path / "logs/eval/evaluations.npz")["timesteps"].tolist() == [128, 256, 384]


def test_trains_from_the_exchange_through_the_cache(in_tmp: Path) -> None:
    fake = FakeBybit(900)
    settings = load_settings(None, train={"symbol": "BTC/USDT:USDT", "num_candles": 800, "total_timesteps": 64,
                                          "n_envs": 1, "n_steps": 64, "batch_size": 64, "vec_env": "dummy",
                                          "progress": False})
    result = train(settings, exchange=fake)
    assert fake.calls and (in_tmp / "data/cache/bybit_linear_BTCUSDT_1m.csv").is_file()
    meta = load_metadata(result.final_model)
    assert meta.extra["data_source"] == "bybit linear BTC/USDT:USDT 1m"
    assert meta.extra["split"]["test"]["end_ms"] == fake.rows[-2][0]  # the last closed candle
    # a perpetual trains with its funding, and the test slice keeps it for backtests
    assert fake.funding_calls and (in_tmp / "data/cache/bybit_linear_BTCUSDT_funding.csv").is_file()
    assert meta.funding is True
    test_slice = pd.read_csv(in_tmp / "data/test_data.csv")
    assert "funding_rate" in test_slice and test_slice["funding_rate"].notna().all()


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--timeframe", "7m"], r"invalid value for train\.timeframe: '7m'"),
        (["--total-timesteps", "-5"], r"invalid value for train\.total_timesteps: -5"),
        (["--n-envs", "0"], r"invalid value for train\.n_envs: 0"),
        (["--learning-rate", "0"], r"invalid value for train\.learning_rate: 0"),
        (["--device", "tpu"], r"invalid value for train\.device: 'tpu'"),
        (["--vec-env", "threads"], r"invalid value for train\.vec_env: 'threads'"),
        (["--symbol", "btcusdt"], r"invalid value for train\.symbol: 'btcusdt'"),
        (["--initial-balance", "-1"], r"invalid value for env\.initial_balance: -1"),
        (["--num-candles", "250"], rf"--num-candles 250 is too few: the split needs at least \d+ \({PREFIX} warm-up"),
        (["--resume", "nowhere.zip"], r"--resume nowhere.zip: no such checkpoint file"),
        (["--data", "data/test_data.csv"], r"--data data/test_data.csv is where the test slice is written"),
    ],
)
def test_bad_flags_fail_clearly_before_any_work(in_tmp: Path, flags: list[str], message: str) -> None:
    result = CliRunner().invoke(app, ["train", *SMALL, *flags])
    assert isinstance(result.exception, UserError), result.output
    assert __import__("re").search(message, str(result.exception)), str(result.exception)
    assert not (in_tmp / "models").exists() and not (in_tmp / "data" / "test_data.csv").exists()
    assert not (in_tmp / "ppo_training.log").exists()


def test_a_finer_data_file_is_resampled_to_the_timeframe(in_tmp: Path, btc_candles: pd.DataFrame) -> None:
    """Train on a coarser interval from a 1m file: 15m candles, and a model that says so."""
    result = CliRunner().invoke(app, ["train", *SMALL, "--timeframe", "15m", "--num-candles", "2000"])
    assert result.exit_code == 0, (result.output, result.exception)
    meta = load_metadata(in_tmp / "models" / "ppo_crypto_model" / "ppo_crypto_model_final.zip")
    assert meta.timeframe == "15m" and meta.extra["data_source"] == f"{SAMPLE} resampled to 15m"
    test = load_candles(in_tmp / "data" / "test_data.csv")
    assert set(test["open_time_ms"].diff().dropna()) == {900_000}
    assert test["close"].iloc[-1] == btc_candles["close"].iloc[-1]  # the last 15m bin ends with the last 1m close
    coarse = in_tmp / "btc_5m.csv"
    candles_to_seed_csv(resample_candles(btc_candles, 300_000), coarse)
    refused = CliRunner().invoke(app, ["train", *SMALL, "--data", str(coarse), "--timeframe", "3m"])
    assert "candles are 5m apart and --timeframe 3m is not a whole multiple" in str(refused.exception)


def test_a_data_file_too_short_for_lookback_and_split_is_named(in_tmp: Path, btc_candles: pd.DataFrame) -> None:
    short = in_tmp / "short.csv"
    btc_candles.iloc[:280][["timestamp", "open", "high", "low", "close", "volume"]].to_csv(short, index=False)
    result = CliRunner().invoke(app, ["train", *SMALL, "--data", str(short)])
    assert isinstance(result.exception, UserError)
    assert f"{short}: 280 candles is too short: need at least" in str(result.exception)
    assert not (in_tmp / "models").exists()


def test_cuda_without_a_gpu_is_refused(in_tmp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    result = CliRunner().invoke(app, ["train", *SMALL, "--device", "cuda"])
    assert "--device cuda: torch sees no CUDA device" in str(result.exception)


def test_resume_refuses_a_checkpoint_built_for_other_features(short_run: Path, in_tmp: Path) -> None:
    checkpoint = in_tmp / "old.zip"
    source = short_run / "models/ppo_crypto_model/checkpoints/ppo_model_128_steps.zip"
    shutil.copy(source, checkpoint)
    meta = json.loads(metadata_path(source).read_text())
    meta["feature_spec"]["version"] = FEATURE_SPEC_VERSION - 1
    metadata_path(checkpoint).write_text(json.dumps(meta))
    result = CliRunner().invoke(app, ["train", *SMALL, "--resume", str(checkpoint)])
    assert isinstance(result.exception, ModelMismatchError)
    assert f"built for feature spec version {FEATURE_SPEC_VERSION - 1}" in str(result.exception)
    with pytest.raises(ModelMismatchError, match="retrain the model"):
        load_ppo(checkpoint)
    with pytest.raises(ModelMismatchError, match="trained with lookback_window=20, configured 30"):
        load_ppo(short_run / "models/ppo_crypto_model/ppo_crypto_model_final.zip", lookback_window=30)
    metadata_path(checkpoint).unlink()
    with pytest.raises(ModelMismatchError, match=r"old.meta.json is missing"):
        load_ppo(checkpoint)


def test_ctrl_c_saves_a_checkpoint_and_exits(in_tmp: Path) -> None:
    """Ctrl-C reaches the whole process group, subprocess envs included; the first stops
    training cleanly and saves a checkpoint that --resume accepts."""
    args = [a for a in SMALL if a not in ("dummy",)]
    args[args.index("--vec-env") + 1:args.index("--vec-env") + 1] = ["subproc"]
    proc = subprocess.Popen([sys.executable, "-m", "trainer.train_ppo", *args, "--total-timesteps", "1000000"],
                            cwd=in_tmp, env=os.environ | {"PYTHONPATH": str(ROOT)}, start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    checkpoints = in_tmp / "models/ppo_crypto_model/checkpoints"
    deadline = time.monotonic() + 120
    while not list(checkpoints.glob("ppo_model_*_steps.meta.json")) and time.monotonic() < deadline:
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGINT)
    output, _ = proc.communicate(timeout=120)
    assert proc.returncode == 130, output
    assert "Ctrl-C: stopping after this step" in output and "continue with --resume" in output
    saved = sorted(int(p.stem.split("_")[2]) for p in checkpoints.glob("ppo_model_*_steps.zip"))
    assert saved and metadata_path(checkpoints / f"ppo_model_{saved[-1]}_steps.zip").is_file()
    assert not (in_tmp / "models/ppo_crypto_model/ppo_crypto_model_final.zip").exists()
    assert load_ppo(checkpoints / f"ppo_model_{saved[-1]}_steps.zip").num_timesteps == saved[-1]


@pytest.mark.parametrize(("flags", "problem"), [
    (["--profile", "fast"], "invalid value for profile: 'fast'"),
    (["--reward-mode", "gross"], "invalid value for env.reward.mode: 'gross'"),
    (["--action-mode", "hedge"], "invalid value for env.action_mode: 'hedge'"),
    (["--n-steps", "100"], "n_steps 100 x n_envs 4 = 400 samples does not divide into minibatches of batch_size 256"),
    (["--decision-stride", "0"], "invalid value for env.decision_stride: 0"),
], ids=["profile", "reward-mode", "action-mode", "n-steps", "stride"])
def test_bad_learning_setup_is_one_clear_error_and_nothing_is_written(in_tmp: Path, flags: list[str],
                                                                      problem: str) -> None:
    done = subprocess.run([sys.executable, "-m", "bot", "train", "--data", str(SAMPLE), *flags], capture_output=True,
                          text=True, env=os.environ | {"PYTHONPATH": str(ROOT), "COLUMNS": "1000"})
    assert done.returncode == 2, done.stderr
    assert problem in done.stderr and "Traceback" not in done.stderr
    assert list(in_tmp.iterdir()) == []  # no log, no model folder, no test slice
