"""Train SB3 PPO on given candles: the one training routine every caller shares.

``shadow train`` (:mod:`trainer.training.single_symbol`), each walk-forward fold
(:class:`trainer.training.fold_trainer.PPOTrainer`), each hyperparameter trial (:mod:`trainer.tuning.search`)
and the scheduled retrain call :func:`fit`, so a model is built the same way whoever asks
for it: same envs (``CryptoTradingEnv`` from ``[env]``, random-start episodes of
``episode_length``), same PPO hyperparameters from ``[train]``, metadata beside every zip.

What :func:`fit` does not do is everything around one training: fetching, splitting, the
test file, the command line. Outputs, under ``out_dir``::

    {model_name}                          the final model (also after a time-limit or callback stop)
    checkpoints/ppo_model_{N}_steps.zip   with checkpoints=True (every checkpoint_freq steps), and on Ctrl-C
    best/best_model.zip                   with validation candles: best mean validation reward so far
    {log_dir}/tensorboard/PPO_{n}/, {log_dir}/eval/evaluations.npz, {log_dir}/env_{i}/monitor.csv
                                          with log_dir given

Each zip has ``X.meta.json`` beside it (:mod:`strategies.model_metadata`).
"""

from __future__ import annotations

import functools
import logging
import signal
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from contextlib import ExitStack, closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import gymnasium as gym
import pandas as pd
import torch
from stable_baselines3 import PPO
from stable_baselines3.common.callbacks import BaseCallback, CallbackList
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.utils import set_random_seed
from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv, VecEnv

from config.errors import UserError
from config.settings import EnvSettings, Settings, TrainSettings
from env.crypto_trading_env import CryptoTradingEnv
from env.features import warmup_prefix
from env.funding import FUNDING_RATE_COLUMN
from strategies.model_metadata import ModelMetadata, load_metadata
from trainer.training.callbacks import (
    CheckpointWithMetadata,
    ContinuingEvalCallback,
    ConvergenceDiagnosticsCallback,
    HParamsToTensorBoard,
    MetadataOnNewBest,
    StopAtDeadline,
    StopOnInterrupt,
    TradeMetrics,
)
from trainer.training.model_io import load_ppo, save_with_metadata
from trainer.training.tensorboard import TB_LOG_NAME, tensorboard_dir

log = logging.getLogger(__name__)

MONITOR_KEYWORDS = ("equity", "total_trades")
BEST_MODEL_NAME = "best_model.zip"

Candles = pd.DataFrame | Sequence[pd.DataFrame]
"""One candle frame, or several (one per symbol) for a model shared between markets."""
StopReason = Literal["time_limit", "callback", "interrupted"]


class FitError(UserError):
    """Settings that make training impossible (for example ``device = "cuda"`` without a GPU)."""


@dataclass(frozen=True, slots=True)
class FitResult:
    """What one :func:`fit` produced.

    Args:
        model_path: the final model; after Ctrl-C (``interruptible``), the checkpoint saved then.
        metadata: what was written beside ``model_path``.
        num_timesteps: environment steps the model has been trained for (warm start included).
        stop_reason: ``None`` when every timestep ran; ``"time_limit"``, ``"callback"`` (a
            callback returned False) or ``"interrupted"`` (Ctrl-C) otherwise.
        best_model_path: ``best/best_model.zip`` when validation candles were given and an
            evaluation ran.
        elapsed_s: wall-clock seconds of ``learn``.

    With validation candles, the metadata holds the model's convergence diagnostics there
    (:mod:`trainer.training.diagnostics`).
    """

    model_path: Path
    metadata: ModelMetadata
    num_timesteps: int
    stop_reason: StopReason | None
    best_model_path: Path | None
    elapsed_s: float

    @property
    def interrupted(self) -> bool:
        return self.stop_reason == "interrupted"


def fit(
    train_candles: Candles,
    val_candles: Candles | None,
    settings: Settings,
    out_dir: Path,
    *,
    seed: int,
    symbol: str,
    timeframe: str,
    warm_start: Path | None = None,
    time_limit_s: float | None = None,
    callback: BaseCallback | Sequence[BaseCallback] | None = None,
    model_name: str = "model.zip",
    checkpoints: bool = False,
    log_dir: Path | None = None,
    interruptible: bool = False,
    extra: Mapping[str, Any] | None = None,
) -> FitResult:
    """Train PPO for ``settings.train.total_timesteps`` steps and save the model.

    Args:
        train_candles: the training frame(s), each starting with its
            ``warmup_prefix(lookback_window)`` warm-up candles (never traded). Several frames: training
            env ``i`` trades frame ``i % len(frames)``.
        val_candles: validation frame(s) for the periodic deterministic evaluation and
            ``best/best_model.zip`` (one episode per frame), or None for none.
        settings: ``[train]`` hyperparameters and ``[env]`` parameters (other sections unused).
        out_dir: where the models go (see the module docstring).
        seed: seeds Python, numpy, torch and the envs' random episode starts.
        symbol, timeframe: the market, recorded in the metadata.
        warm_start: continue training this model zip (its metadata is checked first, its
            hyperparameters, action mode and decision stride are kept, the step count and a
            TensorBoard run continue).
        time_limit_s: stop cleanly after this much wall-clock time in ``learn`` and still save.
        callback: extra SB3 callback(s), run after the built-in ones; returning False stops
            training (``stop_reason == "callback"``) and the model is still saved.
        model_name: file name of the final model in ``out_dir``.
        checkpoints: save ``checkpoints/ppo_model_{N}_steps.zip`` every ``checkpoint_freq`` steps.
        log_dir: TensorBoard, evaluation log and per-env monitor files; None writes no logs.
        interruptible: the first Ctrl-C stops at the end of the step and saves a checkpoint
            instead of the final model (``stop_reason == "interrupted"``).
        extra: more metadata (``extra`` field of every zip written).

    Raises:
        FitError: ``device = "cuda"`` without a GPU.
        strategies.model_metadata.ModelMismatchError: a ``warm_start`` model built for
            other features or another lookback.
    """
    if warm_start is not None:
        settings = continued_settings(settings, load_metadata(warm_start), warm_start)
    args, env_settings = settings.train, settings.env
    train_frames, val_frames = _frames(train_candles), _frames(val_candles) if val_candles is not None else []
    device = resolve_device(args.device)

    # TRY NOT TO MODIFY: seeding
    torch.set_num_threads(args.torch_threads)
    set_random_seed(seed)

    with ExitStack() as stack:
        # ENVS: random-start episodes on the training frames; whole validation frames for eval.
        train_env = stack.enter_context(closing(make_vec_env(
            train_frames, env_settings, args, log_dir, append_logs=warm_start is not None)))
        tensorboard = str(tensorboard_dir(log_dir)) if log_dir is not None else None

        # MODEL: new, or continued from a saved one (step count and TensorBoard run continue).
        if warm_start is not None:
            model = load_ppo(warm_start, lookback_window=env_settings.lookback_window, device=device,
                             env=train_env, tensorboard_log=tensorboard)
            model.set_random_seed(seed)
            log.info("continuing %s at step %d with its own hyperparameters", warm_start, model.num_timesteps)
        else:
            model = PPO(
                "MlpPolicy", train_env, learning_rate=args.learning_rate, n_steps=args.n_steps,
                batch_size=args.batch_size, n_epochs=args.n_epochs, gamma=args.gamma, ent_coef=args.ent_coef,
                policy_kwargs={"net_arch": list(args.net_arch)}, seed=seed, device=device,
                tensorboard_log=tensorboard, verbose=0,
            )
        eval_freq = max(min(args.eval_freq, args.total_timesteps) // args.n_envs, 1)
        convergence = ConvergenceDiagnosticsCallback(val_frames, env_settings, eval_freq) if val_frames else None
        stamp = functools.partial(
            _metadata, settings=settings, model=model, train_frames=train_frames, seed=seed, symbol=symbol,
            timeframe=timeframe, extra=dict(extra or {}), convergence=convergence,
        )

        # CALLBACKS: checkpoints, convergence, validation + best model, logs, Ctrl-C, time limit, the caller's.
        saver = CheckpointWithMetadata(out_dir / "checkpoints", args.checkpoint_freq, stamp)
        chain: list[BaseCallback] = [saver] if checkpoints else []
        best_zip = out_dir / "best" / BEST_MODEL_NAME
        if convergence is not None:
            eval_env = stack.enter_context(closing(DummyVecEnv([
                functools.partial(_validation_env, frame, env_settings) for frame in val_frames])))
            chain.append(convergence)
            chain.append(ContinuingEvalCallback(
                eval_env, n_eval_episodes=len(val_frames), deterministic=True, verbose=0,
                resume=warm_start is not None,
                eval_freq=eval_freq,
                log_path=str(log_dir / "eval") if log_dir is not None else None,
                best_model_save_path=str(best_zip.parent), callback_on_new_best=MetadataOnNewBest(best_zip, stamp),
            ))
        if log_dir is not None:
            hparams = {k: v for k, v in hyperparameters(model, args).items() if isinstance(v, (int, float, str))}
            chain += [TradeMetrics(env_settings.initial_balance), HParamsToTensorBoard(hparams | {"seed": seed})]
        stopper = StopOnInterrupt() if interruptible else None
        deadline = StopAtDeadline(time_limit_s) if time_limit_s is not None else None
        chain += [c for c in (stopper, deadline) if c is not None]
        chain += [callback] if isinstance(callback, BaseCallback) else list(callback or [])

        # ALGO LOGIC: train.
        target = (model.num_timesteps if warm_start is not None else 0) + args.total_timesteps
        log.info("training %s %s: %d steps on %s, %d %s env(s), seed %d", symbol, timeframe, args.total_timesteps,
                 device, args.n_envs, type(train_env).__name__, seed)
        started = time.perf_counter()
        try:
            with warnings.catch_warnings():  # SB3 warns when eval (in-process) and training (subproc) envs differ
                warnings.filterwarnings("ignore", message="Training and eval env are not of the same type")
                model.learn(total_timesteps=args.total_timesteps, callback=CallbackList(chain),
                            tb_log_name=TB_LOG_NAME, reset_num_timesteps=warm_start is None,
                            progress_bar=args.progress)
        finally:
            if stopper is not None:
                stopper.restore_handler()
        elapsed = time.perf_counter() - started

    stop_reason: StopReason | None = None
    if stopper is not None and stopper.interrupted:
        stop_reason = "interrupted"
    elif deadline is not None and deadline.expired:
        stop_reason = "time_limit"
    elif model.num_timesteps < target:
        stop_reason = "callback"
    if convergence is not None and convergence.latest is not None:
        log.info("convergence on the validation slice: %s", convergence.latest.describe())
        if (warning := convergence.latest.warning()) is not None:
            log.warning(warning)
    if stop_reason == "interrupted":
        path = saver.save_now()
        log.warning("interrupted at step %d; checkpoint %s", model.num_timesteps, path)
    else:
        path = save_with_metadata(model, out_dir / model_name, stamp)
        log.info("model (%d steps%s) saved: %s", model.num_timesteps,
                 f", stopped by {stop_reason}" if stop_reason else "", path)
    return FitResult(path, load_metadata(path), model.num_timesteps, stop_reason,
                     best_zip if best_zip.is_file() else None, elapsed)


def continued_settings(settings: Settings, meta: ModelMetadata, source: Path) -> Settings:
    """``settings`` for continuing a model: its action mode and decision stride are its own (they
    fix its action space and what one step is), whatever ``[env]`` says."""
    env = settings.env
    own = {"action_mode": meta.action_mode, "decision_stride": meta.decision_stride}
    if (env.action_mode, env.decision_stride) != (meta.action_mode, meta.decision_stride):
        log.info("continuing %s with its own action mode %s and decision stride %d (configured: %s, %d)", source,
                 meta.action_mode, meta.decision_stride, env.action_mode, env.decision_stride)
    return settings.model_copy(update={"env": env.model_copy(update=own)})


def resolve_device(requested: str) -> str:
    """``auto`` -> ``cuda`` when a GPU is visible, else ``cpu``; ``cuda`` without one is an error."""
    has_cuda = torch.cuda.is_available()
    if requested == "cuda" and not has_cuda:
        raise FitError("--device cuda: torch sees no CUDA device (use --device auto or cpu)")
    if requested == "auto":
        return "cuda" if has_cuda else "cpu"
    return requested


def resolve_vec_env(requested: str) -> type[DummyVecEnv] | type[SubprocVecEnv]:
    """``auto`` -> ``DummyVecEnv`` (all envs in this process).

    One ``CryptoTradingEnv`` step costs about 9 us, far less than the pipe round trip
    of a ``SubprocVecEnv`` worker, so subprocesses made PPO slower in every measurement
    (docs/trainer.md: 3,661 vs 2,138 timesteps/s with 4 envs on 2 cores). ``subproc``
    stays available for an env made costly by future features."""
    return SubprocVecEnv if requested == "subproc" else DummyVecEnv


def make_vec_env(
    frames: Sequence[pd.DataFrame], env_settings: EnvSettings, args: TrainSettings, log_dir: Path | None, *,
    append_logs: bool,
) -> VecEnv:
    """``n_envs`` Monitor-wrapped training envs; env ``i`` trades ``frames[i % len(frames)]``
    and, with a ``log_dir``, logs its episodes to ``{log_dir}/env_{i}/monitor.csv``."""
    vec_cls = resolve_vec_env(args.vec_env)
    thunks: list[Callable[[], gym.Env[Any, Any]]] = [
        functools.partial(
            make_training_env, frames[i % len(frames)], env_settings, args.episode_length,
            log_dir / f"env_{i}" / "monitor.csv" if log_dir is not None else None,
            append=append_logs, in_subprocess=vec_cls is SubprocVecEnv,
        )
        for i in range(args.n_envs)
    ]
    return vec_cls(thunks)


def make_training_env(
    frame: pd.DataFrame, env_settings: EnvSettings, episode_length: int, monitor_file: Path | None, *,
    append: bool, in_subprocess: bool,
) -> gym.Env:
    """One training env (module-level so SubprocVecEnv can pickle it).

    In a worker process SIGINT is ignored: Ctrl-C reaches the whole process group, and
    the main process, not the workers, decides how training stops."""
    if in_subprocess:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    if monitor_file is not None:
        monitor_file.parent.mkdir(parents=True, exist_ok=True)
    env = CryptoTradingEnv.from_settings(frame, env_settings, random_start=True, episode_length=episode_length)
    return Monitor(env, str(monitor_file) if monitor_file is not None else None, info_keywords=MONITOR_KEYWORDS,
                   override_existing=not append)


def hyperparameters(model: PPO, args: TrainSettings) -> dict[str, Any]:
    """The values the model actually trains with (on a warm start: the loaded model's)."""
    net_arch = model.policy_kwargs.get("net_arch")
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
        "net_arch": list(net_arch) if isinstance(net_arch, (list, tuple)) else net_arch,
        "n_envs": model.n_envs,
        "episode_length": args.episode_length,
        "device": str(model.device),
    }


def _validation_env(frame: pd.DataFrame, env_settings: EnvSettings) -> gym.Env:
    return Monitor(CryptoTradingEnv.from_settings(frame, env_settings))


def _frames(candles: Candles) -> list[pd.DataFrame]:
    return [candles] if isinstance(candles, pd.DataFrame) else list(candles)


def _metadata(
    num_timesteps: int, *, settings: Settings, model: PPO, train_frames: Sequence[pd.DataFrame], seed: int,
    symbol: str, timeframe: str, extra: dict[str, Any], convergence: ConvergenceDiagnosticsCallback | None,
) -> ModelMetadata:
    return ModelMetadata.for_current_code(
        lookback_window=settings.env.lookback_window,
        env=settings.env.model_dump(mode="json"),
        symbol=symbol,
        timeframe=timeframe,
        data_range=traded_range(train_frames, warmup_prefix(settings.env.lookback_window)),
        hyperparameters=hyperparameters(model, settings.train),
        seed=seed,
        num_timesteps=num_timesteps,
        extra=extra,
        action_mode=settings.env.action_mode,
        decision_stride=settings.env.decision_stride,
        diagnostics={} if convergence is None or convergence.latest is None else convergence.latest.to_dict(),
        funding=all(FUNDING_RATE_COLUMN in frame for frame in train_frames),
    )


def traded_range(frames: Sequence[pd.DataFrame], prefix: int) -> dict[str, int]:
    """``{"start_ms", "end_ms", "n_candles"}`` of the candles the training envs can trade
    (each frame after its ``prefix`` warm-up rows): the model's ``data_range``."""
    times = [frame["open_time_ms"].iloc[prefix:] for frame in frames]
    return {"start_ms": int(min(t.iloc[0] for t in times)), "end_ms": int(max(t.iloc[-1] for t in times)),
            "n_candles": sum(len(t) for t in times)}
