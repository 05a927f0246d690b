"""Training and judging models: ``[train]``, ``[evaluation]``, ``[compute]``, ``[tune]``
and ``[retrain]``."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, ValidationInfo, field_validator

from config.market import Timeframe
from config.section import Section, check_spec
from config.trading import EnvSettings, RewardSettings


class TrainSettings(Section):
    """Defaults of ``shadow train`` / ``python -m trainer.train_ppo``: one field per flag
    (the seed's flags first), plus the knobs a config file may set. Env parameters live
    in ``[env]``; ``--initial-balance`` overrides ``env.initial_balance``."""

    symbol: str = Field(
        "BTC/USDT", pattern=r"^[A-Z0-9]+/[A-Z0-9]+(:[A-Z0-9]+)?$",
        description="ccxt symbol: BTC/USDT is Bybit spot, BTC/USDT:USDT the linear perpetual",
    )
    timeframe: Timeframe = Field("1m", description="candle timeframe")
    num_candles: int = Field(100_000, ge=1, description="historical candles to train, validate and test on")
    total_timesteps: int = Field(200_000, ge=1, description="PPO environment steps (on --resume: steps to add)")
    n_envs: int = Field(4, ge=1, le=256, description="parallel training environments")
    learning_rate: float = Field(3e-4, gt=0, le=1, description="PPO learning rate")
    batch_size: int = Field(64, ge=2, description="PPO minibatch size")
    n_epochs: int = Field(10, ge=1, description="PPO epochs per update")
    n_steps: int = Field(2048, ge=2, description="rollout steps per env between PPO updates")
    gamma: float = Field(0.99, gt=0, le=1, description="PPO discount factor")
    ent_coef: float = Field(0.0, ge=0, le=1, description="PPO entropy bonus coefficient (exploration)")
    net_arch: tuple[int, ...] = Field(
        (64, 64), min_length=1, max_length=8,
        description="hidden layer sizes of the policy and value networks (SB3's default is 64, 64)",
    )
    save_path: Path = Field(
        Path("models/ppo_crypto_model"), description="folder for checkpoints/, best/ and the final model"
    )
    log_dir: Path = Field(Path("logs"), description="folder for tensorboard/, eval/ and env_N/ monitor logs")
    data: Path | None = Field(None, description="train from this candle CSV instead of fetching from Bybit")
    seed: int = Field(0, ge=0, description="seed for numpy, torch and the training envs' random episode starts")
    seeds: int = Field(
        1, ge=1, le=100, description="train this many models with seeds seed, seed + 1, ... (on the [compute] "
        "backend), keep each with its validation figures, select the best by validation return and report the spread")
    resume: Path | None = Field(None, description="checkpoint zip to continue training from")
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="torch device; auto picks CUDA when present")
    vec_env: Literal["auto", "dummy", "subproc"] = Field(
        "auto",
        description="vectorised env: dummy (one process), subproc (one process per env); auto = dummy, faster here",
    )
    episode_length: int = Field(2048, ge=2, description="steps per training episode (random start each episode)")
    checkpoint_freq: int = Field(
        10_000, ge=1, description="save checkpoints/ppo_model_N_steps.zip every this many steps"
    )
    eval_freq: int = Field(10_000, ge=1, description="evaluate on the validation slice every this many steps")
    validation_fraction: float = Field(0.15, gt=0, lt=0.5, description="share of tradable candles for validation")
    test_fraction: float = Field(0.15, gt=0, lt=0.5, description="share of tradable candles for the test slice")
    test_data_path: Path = Field(Path("data/test_data.csv"), description="where the test slice is written")
    cache_dir: Path = Field(Path("data/cache"), description="local candle cache (one CSV per market and timeframe)")
    torch_threads: int = Field(1, ge=1, le=64, description="torch CPU threads (the daemon shares the cores)")
    progress: bool = Field(True, description="show a progress bar while fetching and training")

    @field_validator("n_steps")
    @classmethod
    def _rollout_fills_minibatches(cls, value: int, info: ValidationInfo) -> int:
        n_envs, batch = info.data.get("n_envs"), info.data.get("batch_size")
        if n_envs is not None and batch is not None and (value * n_envs) % batch:
            raise ValueError(f"a rollout of n_steps {value} x n_envs {n_envs} = {value * n_envs} samples does not "
                             f"divide into minibatches of batch_size {batch}; make it a multiple")
        return value

    @field_validator("net_arch")
    @classmethod
    def _layer_sizes(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        if any(not 1 <= size <= 4096 for size in value):
            raise ValueError("every layer size must be between 1 and 4096")
        return value


class EvaluationSettings(Section):
    """Backtests and walk-forward evaluation (``shadow backtest``, ``shadow evaluate``).
    Commission and slippage come from ``[env]``, so a backtest pays what training paid;
    every scorer (backtest, walk-forward, tune, multi-symbol validation, the retraining gate)
    judges every strategy, baselines included, under the same ``[env]`` and guard."""

    strategy: str = Field(
        "sma:fast=10,slow=50",
        description="strategy `shadow backtest` runs when --strategy is not given "
        "(e.g. 'ppo:models/x.zip', 'sma:fast=10,slow=50', 'rsi:period=14', 'random:seed=0')",
    )
    baselines: tuple[str, ...] = Field(
        ("sma:fast=10,slow=50", "rsi:period=14", "random:seed=0"),
        description="extra baselines compared with the strategy; buy_and_hold and flat are always shown",
    )
    risk_guard: bool = Field(
        True, description="score every strategy with the [risk] limits between its decisions and its fills, as "
        "the daemon trades (backtest, walk-forward, tune, multi-symbol validation, retraining gate)",
    )
    train_candles: int = Field(14_400, ge=300,
                               description="walk-forward: candles per training window (14,400 = 10 days of 1m)")
    test_candles: int = Field(2_880, ge=2, description="walk-forward: candles per out-of-sample test slice")
    step_candles: int | None = Field(
        None, ge=1, description="walk-forward: how far the window moves per fold (default: test_candles, no overlap)"
    )
    max_folds: int | None = Field(None, ge=1,
                                  description="walk-forward: stop after this many folds (default: all that fit)")
    total_timesteps: int = Field(
        50_000, ge=64, description="walk-forward: PPO timesteps per fold (other hyperparameters come from [train])"
    )
    seed: int = Field(0, ge=0, description="walk-forward: seed of fold 1 (fold k uses seed + k - 1)")
    seeds: int = Field(
        1, ge=1, le=100, description="walk-forward: models trained per fold (replica r adds 1000 r to the seed); "
        "the report gives the mean and range over them")

    @field_validator("strategy")
    @classmethod
    def _strategy_spec(cls, value: str) -> str:
        return check_spec(value)

    @field_validator("baselines")
    @classmethod
    def _baseline_specs(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(check_spec(v) for v in value)


class ComputeSettings(Section):
    """Where many trainings run (``shadow tune``, ``shadow train --symbols``): processes on
    this machine or tasks on a Ray cluster; the same command and config run on both."""

    backend: Literal["local", "ray"] = Field(
        "local", description="local: processes on this machine; ray: tasks on a Ray cluster (optional extra)"
    )
    workers: int | None = Field(
        None, ge=1, le=4096,
        description="jobs run at once (default: cores / train.torch_threads locally, the cluster's CPUs on Ray)",
    )
    ray_address: str | None = Field(
        None, description="Ray cluster to use (ray://host:10001 or host:6379); default: start a local Ray instance"
    )


_LOG_RANGES = ("learning_rate", "ent_coef")
_UNIFORM_RANGES = ("reward_unrealized", "reward_losing_hold", "reward_inactivity", "reward_fee_multiplier")


class SearchSpaceSettings(Section):
    """What ``shadow tune`` searches. A range is ``[low, high]`` (sampled log-uniformly for
    learning_rate and ent_coef, uniformly for the reward weights); other entries list the
    choices. An empty list keeps the ``[train]``/``[env]`` value (not searched)."""

    learning_rate: list[float] = Field([1e-5, 1e-3], description="PPO learning rate: log range [low, high]")
    n_steps: list[int] = Field([256, 512, 1024, 2048], description="rollout steps per env: choices")
    batch_size: list[int] = Field([32, 64, 128, 256], description="PPO minibatch size: choices")
    gamma: list[float] = Field([0.9, 0.95, 0.98, 0.99, 0.995], description="discount factor: choices")
    ent_coef: list[float] = Field([1e-8, 0.05], description="entropy coefficient: log range [low, high]")
    net_arch: list[tuple[int, ...]] = Field(
        [(64, 64), (128, 128), (256, 256)], description="network hidden layer sizes: choices, e.g. [[64, 64], [256]]"
    )
    lookback_window: list[int] = Field([10, 20, 30], description="candles per observation: choices")
    reward_unrealized: list[float] = Field([0.0, 0.5], description="env.reward.unrealized: range [low, high]")
    reward_losing_hold: list[float] = Field([0.0, 0.05], description="env.reward.losing_hold: range [low, high]")
    reward_inactivity: list[float] = Field([0.0, 0.5], description="env.reward.inactivity: range [low, high]")
    reward_fee_multiplier: list[float] = Field(
        [], description="env.reward.fee_multiplier (the turnover knob): range [low, high]")

    @field_validator("*")
    @classmethod
    def _valid_entries(cls, value: list[Any], info: ValidationInfo) -> list[Any]:
        name = info.field_name
        assert name is not None  # a field validator always runs for a named field
        if name in _LOG_RANGES or name in _UNIFORM_RANGES:
            if value and (len(value) != 2 or not value[0] <= value[1]):
                raise ValueError("must be a range [low, high] with low <= high, or [] to keep the configured value")
            if value and name in _LOG_RANGES and value[0] <= 0:
                raise ValueError("a log range needs low > 0")
        elif len(set(value)) != len(value):
            raise ValueError("lists a choice more than once")
        section, field = (RewardSettings, name.removeprefix("reward_")) if name.startswith("reward_") else (
            (EnvSettings, name) if name == "lookback_window" else (TrainSettings, name))
        for entry in value:
            try:
                section(**{field: entry})
            except ValidationError as exc:
                raise ValueError(f"{entry!r}: {exc.errors()[0]['msg']}") from None
        return value


class TuneSettings(Section):
    """``shadow tune``: Optuna search (TPE sampler, median pruning) scored by walk-forward
    validation inside the data left after holding out ``shadow train``'s test slice."""

    n_trials: int = Field(20, ge=1, le=100_000, description="trials to run (added to a study resumed from storage)")
    timeout_s: float | None = Field(None, gt=0, description="start no new trial after this many seconds")
    timesteps: int = Field(20_000, ge=16, description="PPO timesteps per fold of a trial")
    folds: int = Field(3, ge=1, le=100, description="walk-forward folds per trial; pruning is decided after each")
    fold_train_candles: int | None = Field(
        None, ge=300, description="candles per fold's training window (default: all that fit before the first "
        "validation slice)",
    )
    fold_validation_candles: int | None = Field(
        None, ge=2, description="candles per fold's validation slice (default: train.validation_fraction of the "
        "tuning data, split among the folds)",
    )
    objective: Literal["return", "sharpe"] = Field(
        "return", description="per-fold validation score, averaged over folds: total return or Sharpe ratio"
    )
    seed: int = Field(0, ge=0, description="seed of the TPE sampler (trials train with train.seed)")
    seeds: int = Field(
        1, ge=1, le=100, description="models trained per fold of a trial (replica r adds 1000 r to train.seed); a "
        "fold's score is their mean")
    parallel_trials: int | None = Field(
        None, ge=1, le=4096,
        description="trials run side by side; trial i is chosen knowing trials up to i - parallel_trials, so a "
        "fixed value gives the same trials on any backend and worker count (default: the backend's workers)",
    )
    startup_trials: int = Field(5, ge=0, description="random trials before TPE starts modelling")
    prune_startup_trials: int = Field(3, ge=0, description="completed trials before any trial is pruned")
    prune_warmup_folds: int = Field(0, ge=0, description="folds a trial always runs before it can be pruned")
    study_name: str = Field("shadow", min_length=1, description="Optuna study name inside the storage")
    storage: str | None = Field(
        None, description="Optuna storage URL (default: sqlite:///<out_dir>/study.sqlite)"
    )
    out_dir: Path = Field(Path("tune"), description="folder for trials.csv, summary.json, summary.png and best.toml")
    space: SearchSpaceSettings = SearchSpaceSettings()


class RetrainSettings(Section):
    """Scheduled retraining inside ``shadow run`` (and ``shadow retrain --now``): when it runs,
    what it trains on, how the candidate is judged, and where models are kept."""

    enabled: bool = Field(False, description="retrain inside `shadow run` on the triggers below")
    every_candles: int | None = Field(
        None, ge=1, description="retrain after this many new candle closes have been decided (counted by the daemon)"
    )
    interval_minutes: float | None = Field(None, gt=0, description="retrain every this many minutes of wall time")
    cron: str | None = Field(
        None, description="retrain on this crontab schedule, UTC (e.g. '0 */6 * * *'); excludes interval_minutes"
    )
    cold_start: bool = Field(
        True, description="with no promoted model yet, retrain as soon as the daemon starts (needs enabled)"
    )
    holdout_fraction: float = Field(
        0.2, gt=0, lt=1, description="share of the tradable candles held out (the most recent) to judge the candidate"
    )
    holdout_candles: int | None = Field(
        None, ge=10, description="hold out exactly this many of the most recent candles (overrides holdout_fraction)"
    )
    min_train_candles: int = Field(
        500, ge=2, description="tradable candles the training window needs at the least; fewer fails the run"
    )
    max_train_candles: int | None = Field(
        None, ge=2, description="train on at most this many tradable candles before the holdout (default: all)"
    )
    metric: Literal["sharpe", "sortino", "calmar", "total_return"] = Field(
        "sharpe", description="holdout metric of the promotion gate: sharpe, sortino, calmar or total_return"
    )
    margin: float = Field(
        0.0, ge=0, description="the candidate must beat the incumbent and flat by more than this, in the metric's units"
    )
    warm_start: bool = Field(False, description="continue training the promoted model (continual learning)")
    timesteps: int = Field(
        50_000, ge=64,
        description="PPO timesteps per retrain (at least one rollout of [train] n_steps x n_envs; the other "
        "hyperparameters come from [train])",
    )
    seed: int = Field(0, ge=0, description="training seed (retrain run k uses seed + k)")
    time_limit_s: float = Field(
        1800.0, gt=0, description="a retrain still running after this many seconds is killed and recorded as failed"
    )
    memory_limit_mb: int | None = Field(
        4096, ge=512, description="address-space limit of the training process in MB (None: no limit)"
    )
    nice: int = Field(19, ge=0, le=19, description="niceness of the training process, so decisions win the CPU")
    keep_models: int = Field(
        5, ge=0, description="model files kept besides the promoted ones and their parents (older ones are deleted)"
    )
    registry_dir: Path = Field(Path("models/registry"), description="where versioned model files live")
    shared_model: bool = Field(
        False, description="train one model on every symbol's candles instead of one model per symbol"
    )
    poll_seconds: float = Field(
        30.0, gt=0, description="how often the daemon checks the registry for a model promoted by another process"
    )
    live_trial_candles: int = Field(
        0, ge=0, le=1_000_000,
        description="a candidate that passes the holdout first trades as a challenger account for this many live "
        "candles beside the incumbent account, and is promoted only if it beats the incumbent and flat on them by "
        "metric and margin (0: promoted on the holdout alone)",
    )

    @field_validator("cron")
    @classmethod
    def _crontab(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return None
        if info.data.get("interval_minutes") is not None:
            raise ValueError("give either interval_minutes or cron, not both")
        from apscheduler.triggers.cron import CronTrigger

        try:
            CronTrigger.from_crontab(value, timezone="UTC")
        except ValueError as exc:
            raise ValueError(f"not a crontab expression ({exc}); e.g. '0 */6 * * *'") from None
        return value

    @field_validator("max_train_candles")
    @classmethod
    def _not_below_min(cls, value: int | None, info: ValidationInfo) -> int | None:
        low = info.data.get("min_train_candles")
        if value is not None and low is not None and value < low:
            raise ValueError(f"must be at least min_train_candles ({low})")
        return value
