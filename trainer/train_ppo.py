"""Train a PPO policy on Bybit candles: the seed's ``python -m app.ml.train_ppo``.

Reads top to bottom like CleanRL's ``ppo.py``: arguments (``[train]`` settings, one
field per flag), checks that fail before any work, data and split, one seeding block,
envs, model, callbacks, ``learn``, final save. Outputs (paths from the flags)::

    {save_path}/checkpoints/ppo_model_{N}_steps.zip   every checkpoint_freq steps (+ on Ctrl-C)
    {save_path}/best/best_model.zip                   best mean reward on the validation slice
    {save_path}/ppo_crypto_model_final.zip            after the last step
    {log_dir}/tensorboard/PPO_{run}/                  TensorBoard (continued by --resume)
    {log_dir}/eval/evaluations.npz                    every validation evaluation
    {log_dir}/env_{i}/monitor.csv                     per training env episodes (appended by --resume)
    data/test_data.csv                                the test slice with its warm-up prefix
    ppo_training.log                                  the log (set up by the command line)

Every zip has its metadata beside it (``X.meta.json``, :mod:`strategies.model_metadata`).
"""

from __future__ import annotations

import functools
import logging
import signal
import warnings
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import pandas as pd
import torch
from stable_baselines3 import PPO
from stable_baselines3.common.callbacks import CallbackList
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.utils import set_random_seed
from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv, VecEnv

from config.errors import UserError
from config.settings import EnvSettings, Settings, TrainSettings
from env.candles import CandleDataError, candles_to_seed_csv, infer_interval_ms, load_candles
from env.crypto_trading_env import CryptoTradingEnv
from env.features import WARMUP_CANDLES
from strategies.model_metadata import ModelMetadata, check_compatible, load_metadata
from trainer.callbacks import (
    CheckpointWithMetadata,
    ContinuingEvalCallback,
    HParamsToTensorBoard,
    MetadataOnNewBest,
    StopOnInterrupt,
    TradeMetrics,
)
from trainer.history import Market, OhlcvSource, bybit_exchange, format_ms, load_history
from trainer.model_io import load_ppo, save_with_metadata
from trainer.split import ChronoSplit, chronological_split, min_candles

log = logging.getLogger(__name__)

FINAL_MODEL_NAME = "ppo_crypto_model_final.zip"
TB_LOG_NAME = "PPO"
MONITOR_KEYWORDS = ("equity", "total_trades")


class TrainArgsError(UserError):
    """A flag or setting that makes training impossible (checked before any work)."""


@dataclass(frozen=True, slots=True)
class RunPaths:
    """Where one run writes, derived once from ``--save-path`` and ``--log-dir``."""

    checkpoints: Path
    best_dir: Path
    final_model: Path
    tensorboard: Path
    eval_dir: Path
    log_dir: Path

    @classmethod
    def from_args(cls, args: TrainSettings) -> RunPaths:
        return cls(
            checkpoints=args.save_path / "checkpoints",
            best_dir=args.save_path / "best",
            final_model=args.save_path / FINAL_MODEL_NAME,
            tensorboard=args.log_dir / "tensorboard",
            eval_dir=args.log_dir / "eval",
            log_dir=args.log_dir,
        )

    def monitor_file(self, env_index: int) -> Path:
        return self.log_dir / f"env_{env_index}" / "monitor.csv"


@dataclass(frozen=True, slots=True)
class TrainResult:
    """What a run produced. ``final_model`` is None when Ctrl-C stopped it early."""

    final_model: Path | None
    last_checkpoint: Path | None
    num_timesteps: int
    interrupted: bool
    split: ChronoSplit
    paths: RunPaths


def train(settings: Settings, *, exchange: OhlcvSource | None = None) -> TrainResult:
    """Run one training (or ``--resume``) as configured; see the module docstring.

    Args:
        settings: validated settings; ``settings.train`` holds the flags.
        exchange: candle source for a run without ``--data`` (default: ccxt Bybit at
            ``settings.exchange.rest_url``).

    Raises:
        UserError: a bad flag, data file or checkpoint, before any training starts.
    """
    args, env_settings = settings.train, settings.env
    paths = RunPaths.from_args(args)
    prefix = WARMUP_CANDLES + env_settings.lookback_window - 1

    # CHECKS: everything a flag can get wrong fails here, before data or training.
    device = resolve_device(args.device)
    if args.resume is not None:
        if not args.resume.is_file():
            raise TrainArgsError(f"--resume {args.resume}: no such checkpoint file")
        check_compatible(load_metadata(args.resume), args.resume, env_settings.lookback_window)
    if args.data is not None and args.data.resolve() == args.test_data_path.resolve():
        raise TrainArgsError(f"--data {args.data} is where the test slice is written; copy it elsewhere first")
    need = min_candles(prefix, args.validation_fraction, args.test_fraction)
    if args.num_candles < need:
        raise TrainArgsError(
            f"--num-candles {args.num_candles} is too few: the split needs at least {need} "
            f"({prefix} warm-up/lookback candles plus train/validation/test slices)"
        )

    # DATA: candles -> chronological split -> the test slice for backtesting.
    candles, source = _load_candles(args, settings, exchange)
    split = chronological_split(candles, prefix=prefix, validation_fraction=args.validation_fraction,
                                test_fraction=args.test_fraction, source=source)
    candles_to_seed_csv(split.test.frame, args.test_data_path)
    for part in (split.train, split.validation, split.test):
        r = part.data_range()
        log.info("%-10s %6d traded candles  %s .. %s",
                 part.name, r["n_candles"], format_ms(r["start_ms"]), format_ms(r["end_ms"]))
    log.info("test slice (with %d warm-up candles) written to %s", prefix, args.test_data_path)

    # TRY NOT TO MODIFY: seeding
    torch.set_num_threads(args.torch_threads)
    set_random_seed(args.seed)

    # ENVS: random-start episodes on the train slice; the whole validation slice for eval.
    train_env = make_vec_env(split.train.frame, env_settings, args, paths, append_logs=args.resume is not None)
    eval_env = Monitor(CryptoTradingEnv.from_settings(split.validation.frame, env_settings))
    with closing(train_env) as vec_env, closing(eval_env):
        # MODEL: new, or continued from a checkpoint (step count and TensorBoard run continue).
        if args.resume is not None:
            model = load_ppo(args.resume, lookback_window=env_settings.lookback_window, device=device,
                             env=vec_env, tensorboard_log=str(paths.tensorboard))
            model.set_random_seed(args.seed)
            log.info("resuming %s at step %d with its own hyperparameters (learning rate, batch size, epochs, "
                     "n_steps)", args.resume, model.num_timesteps)
        else:
            model = PPO(
                "MlpPolicy", vec_env, learning_rate=args.learning_rate, n_steps=args.n_steps,
                batch_size=args.batch_size, n_epochs=args.n_epochs, gamma=args.gamma, seed=args.seed,
                device=device, tensorboard_log=str(paths.tensorboard), verbose=0,
            )
        stamp = functools.partial(_metadata, settings=settings, model=model, split=split, source=source)

        # CALLBACKS: checkpoints, validation eval + best model, metrics for TensorBoard, Ctrl-C.
        checkpoints = CheckpointWithMetadata(paths.checkpoints, args.checkpoint_freq, stamp)
        evaluation = ContinuingEvalCallback(
            eval_env, n_eval_episodes=1, deterministic=True, verbose=0, resume=args.resume is not None,
            eval_freq=max(min(args.eval_freq, args.total_timesteps) // args.n_envs, 1),
            log_path=str(paths.eval_dir), best_model_save_path=str(paths.best_dir),
            callback_on_new_best=MetadataOnNewBest(paths.best_dir / "best_model.zip", stamp),
        )
        hparams = {k: v for k, v in _hyperparameters(model, args).items() if isinstance(v, (int, float, str))}
        stopper = StopOnInterrupt()
        callbacks = CallbackList([checkpoints, evaluation, TradeMetrics(env_settings.initial_balance),
                                  HParamsToTensorBoard(hparams | {"seed": args.seed}), stopper])

        # ALGO LOGIC: train.
        log.info("training %s %s: %d steps on %s, %d %s env(s), seed %d", args.symbol, args.timeframe,
                 args.total_timesteps, device, args.n_envs, type(vec_env).__name__, args.seed)
        try:
            with warnings.catch_warnings():  # SB3 warns when eval (in-process) and training (subproc) envs differ
                warnings.filterwarnings("ignore", message="Training and eval env are not of the same type")
                model.learn(total_timesteps=args.total_timesteps, callback=callbacks, tb_log_name=TB_LOG_NAME,
                            reset_num_timesteps=args.resume is None, progress_bar=args.progress)
        finally:
            stopper.restore_handler()

    if stopper.interrupted:
        checkpoint = checkpoints.save_now()
        log.warning("interrupted at step %d; continue with --resume %s", model.num_timesteps, checkpoint)
        return TrainResult(None, checkpoint, model.num_timesteps, True, split, paths)
    final = save_with_metadata(model, paths.final_model, stamp)
    log.info("final model (%d steps) saved: %s", model.num_timesteps, final)
    return TrainResult(final, _latest_checkpoint(paths.checkpoints), model.num_timesteps, False, split, paths)


def resolve_device(requested: str) -> str:
    """``auto`` -> ``cuda`` when a GPU is visible, else ``cpu``; ``cuda`` without one is an error."""
    has_cuda = torch.cuda.is_available()
    if requested == "cuda" and not has_cuda:
        raise TrainArgsError("--device cuda: torch sees no CUDA device (use --device auto or cpu)")
    if requested == "auto":
        return "cuda" if has_cuda else "cpu"
    return requested


def resolve_vec_env(requested: str) -> type[VecEnv]:
    """``auto`` -> ``DummyVecEnv`` (all envs in this process).

    One ``CryptoTradingEnv`` step costs about 9 us, far less than the pipe round trip
    of a ``SubprocVecEnv`` worker, so subprocesses made PPO slower in every measurement
    (docs/trainer.md: 3,661 vs 2,138 timesteps/s with 4 envs on 2 cores). ``subproc``
    stays available for an env made costly by future features."""
    return SubprocVecEnv if requested == "subproc" else DummyVecEnv


def make_vec_env(
    frame: pd.DataFrame, env_settings: EnvSettings, args: TrainSettings, paths: RunPaths, *, append_logs: bool
) -> VecEnv:
    """``n_envs`` Monitor-wrapped training envs, each logging to ``{log_dir}/env_{i}/``."""
    vec_cls = resolve_vec_env(args.vec_env)
    thunks = [
        functools.partial(
            make_training_env, frame, env_settings, args.episode_length, paths.monitor_file(i),
            append=append_logs, in_subprocess=vec_cls is SubprocVecEnv,
        )
        for i in range(args.n_envs)
    ]
    return vec_cls(thunks)


def make_training_env(
    frame: pd.DataFrame, env_settings: EnvSettings, episode_length: int, monitor_file: Path, *,
    append: bool, in_subprocess: bool,
) -> gym.Env:
    """One training env (module-level so SubprocVecEnv can pickle it).

    In a worker process SIGINT is ignored: Ctrl-C reaches the whole process group, and
    the main process, not the workers, decides how training stops."""
    if in_subprocess:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    monitor_file.parent.mkdir(parents=True, exist_ok=True)
    env = CryptoTradingEnv.from_settings(frame, env_settings, random_start=True, episode_length=episode_length)
    return Monitor(env, str(monitor_file), info_keywords=MONITOR_KEYWORDS, override_existing=not append)


def _load_candles(args: TrainSettings, settings: Settings, exchange: OhlcvSource | None) -> tuple[pd.DataFrame, str]:
    """The last ``num_candles`` candles from ``--data`` or from Bybit (through the cache)."""
    market = Market(args.symbol, args.timeframe)
    if args.data is None:
        source = exchange or bybit_exchange(settings.exchange.rest_url, market.category)
        candles = load_history(market, args.num_candles, exchange=source, cache_dir=args.cache_dir,
                               progress=args.progress)
        return candles, f"bybit {market.category} {args.symbol} {args.timeframe}"
    candles = load_candles(args.data)
    interval_ms = infer_interval_ms(candles["open_time_ms"].to_numpy())
    if interval_ms != market.interval_ms:
        raise CandleDataError(
            str(args.data),
            f"candles are {interval_ms // 1000} s apart but --timeframe {args.timeframe} is "
            f"{market.interval_ms // 1000} s; pass the file's timeframe",
        )
    if len(candles) > args.num_candles:
        candles = candles.iloc[-args.num_candles:].reset_index(drop=True)
    return candles, str(args.data)


def _metadata(
    num_timesteps: int, *, settings: Settings, model: PPO, split: ChronoSplit, source: str
) -> ModelMetadata:
    args = settings.train
    return ModelMetadata.for_current_code(
        lookback_window=settings.env.lookback_window,
        env=settings.env.model_dump(mode="json"),
        symbol=args.symbol,
        timeframe=args.timeframe,
        data_range=split.train.data_range(),
        hyperparameters=_hyperparameters(model, args),
        seed=args.seed,
        num_timesteps=num_timesteps,
        extra={
            "data_source": source,
            "split": split.ranges(),
            "resumed_from": str(args.resume) if args.resume else None,
        },
    )


def _hyperparameters(model: PPO, args: TrainSettings) -> dict[str, Any]:
    """The values the model actually trains with (on --resume: the checkpoint's)."""
    return {
        "algorithm": "PPO",
        "policy": "MlpPolicy",
        "learning_rate": model.learning_rate if isinstance(model.learning_rate, float) else str(model.learning_rate),
        "n_steps": model.n_steps,
        "batch_size": model.batch_size,
        "n_epochs": model.n_epochs,
        "gamma": model.gamma,
        "gae_lambda": model.gae_lambda,
        "ent_coef": model.ent_coef,
        "vf_coef": model.vf_coef,
        "n_envs": model.n_envs,
        "episode_length": args.episode_length,
        "device": str(model.device),
    }


def _latest_checkpoint(folder: Path) -> Path | None:
    found = sorted(folder.glob("ppo_model_*_steps.zip"), key=lambda p: int(p.stem.split("_")[2]))
    return found[-1] if found else None


if __name__ == "__main__":
    from trainer.cli import run_train_ppo

    run_train_ppo()
