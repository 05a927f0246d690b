"""Shadow's one typed settings object.

Sources, highest priority first: values passed in code (CLI flags), ``SHADOW_*``
environment variables (nested with ``__``: ``SHADOW_ENV__COMMISSION=0.00055``), a TOML
file (``--config shadow.toml`` or ``SHADOW_CONFIG``), then the defaults below.
:func:`load_settings` turns every invalid value into a :class:`ConfigError` that names
the field, the value and where it came from.
"""

from __future__ import annotations

import os
import re
import tomllib
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict, TomlConfigSettingsSource

from config.errors import UserError

ENV_PREFIX = "SHADOW_"
ENV_NESTED_DELIMITER = "__"
CONFIG_PATH_VARIABLE = "SHADOW_CONFIG"

_SYMBOL = re.compile(r"^[A-Z0-9]{2,32}$")

_config_file: ContextVar[Path | None] = ContextVar("_config_file", default=None)


class ConfigError(UserError, ValueError):
    """Settings that cannot be used; the message names field, value and source."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)


class RewardSettings(_Section):
    """Weights of the env's five reward components (``env/reward.py``), in bps of the
    initial balance."""

    realized: float = Field(1.0, ge=0, description="weight of realised net PnL")
    unrealized: float = Field(0.1, ge=0, description="weight of the open position's per-step move")
    losing_hold: float = Field(0.01, ge=0, description="weight of the open loss, charged per step while losing")
    inactivity: float = Field(0.1, ge=0, description="bps charged per step once flat longer than inactivity_steps")
    inactivity_steps: int = Field(240, ge=0, description="flat steps tolerated before the inactivity charge")
    blowup: float = Field(10_000.0, ge=0, description="bps charged when the account blows up")
    max_loss: float = Field(0.5, gt=0, le=1, description="loss fraction of the initial balance that ends an episode")


class EnvSettings(_Section):
    """``CryptoTradingEnv`` and portfolio parameters (the seed's environment settings)."""

    initial_balance: float = Field(100.0, gt=0, description="starting capital in USDT")
    commission: float = Field(0.0004, ge=0, lt=1, description="fee rate per fill (0.0004 = 0.04%)")
    max_position_size: float = Field(1.0, gt=0, le=100, description="position notional as a multiple of equity")
    lookback_window: int = Field(20, ge=1, le=1000, description="candles of features per observation")
    reward_scaling: float = Field(1e-4, gt=0, description="multiplies the reward's bps sum")
    slippage_bps: float = Field(0.0, ge=0, lt=10_000, description="adverse fill offset in basis points")
    reward: RewardSettings = RewardSettings()


class ExchangeSettings(_Section):
    """Where market data comes from and how the connection is kept alive. Public endpoints
    only: Shadow never places an order. Point both URLs at ``shadow replay-server`` to run
    against a local replay instead of Bybit."""

    category: Literal["spot", "linear"] = Field("linear", description="Bybit market: spot or linear perpetuals")
    ws_url: str = Field(
        "wss://stream.bybit.com/v5/public/linear",
        description="Bybit v5 public websocket URL; its /v5/public/... path must match category",
    )
    rest_url: str = Field("https://api.bybit.com", description="Bybit v5 REST base URL (used through ccxt)")
    ping_interval_s: float = Field(20.0, gt=0, description="seconds between the JSON pings Bybit asks clients to send")
    watchdog_s: float = Field(
        45.0, gt=0, description="a connection silent this long (no data, no pong) is closed and reconnected"
    )
    open_timeout_s: float = Field(
        10.0, gt=0, description="seconds allowed to open the websocket and to get the subscribe acks"
    )
    backoff_min_s: float = Field(
        1.0, gt=0, description="first delay of the jittered exponential back-off (reconnects, REST retries)"
    )
    backoff_max_s: float = Field(60.0, gt=0, description="longest delay of the back-off")
    rest_timeout_s: float = Field(10.0, gt=0, description="timeout of one REST request")
    rest_attempts: int = Field(
        6, ge=1, le=100, description="tries of one REST request on rate-limit or network errors before giving up"
    )

    @field_validator("ws_url")
    @classmethod
    def _websocket_url(cls, value: str, info: ValidationInfo) -> str:
        if not re.match(r"^wss?://", value):
            raise ValueError("must start with ws:// or wss://")
        market = re.search(r"/v5/public/([a-z]+)/?$", value)
        category = info.data.get("category")
        if market and category and market.group(1) != category:
            raise ValueError(
                f"is the {market.group(1)} stream but exchange.category is {category!r}; use a /v5/public/{category} URL"
            )
        return value

    @field_validator("rest_url")
    @classmethod
    def _http_scheme(cls, value: str) -> str:
        if not re.match(r"^https?://", value):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/")

    @field_validator("watchdog_s")
    @classmethod
    def _longer_than_ping(cls, value: float, info: ValidationInfo) -> float:
        ping = info.data.get("ping_interval_s")
        if ping is not None and value <= ping:
            raise ValueError(f"must be longer than ping_interval_s ({ping}), or every quiet spell looks like a dead link")
        return value

    @field_validator("backoff_max_s")
    @classmethod
    def _not_below_min(cls, value: float, info: ValidationInfo) -> float:
        low = info.data.get("backoff_min_s")
        if low is not None and value < low:
            raise ValueError(f"must be at least backoff_min_s ({low})")
        return value


Timeframe = Literal["1m", "3m", "5m", "15m", "30m", "1h", "2h", "4h", "6h", "12h", "1d", "1w", "1M"]
TIMEFRAMES: tuple[str, ...] = get_args(Timeframe)
"""Candle timeframes Bybit serves (ccxt names); ``interval`` on the wire is 1, 3, ... D, W, M."""
FEED_INTERVALS: tuple[str, ...] = tuple(t for t in TIMEFRAMES if t != "1M")
"""The live feed's intervals: those of fixed length (a calendar month is not), so that a
gap is a whole number of candles (``bot.bybit.markets`` maps them to Bybit's names)."""


class FeedSettings(_Section):
    """Which candles the live feed streams: one websocket carries every symbol."""

    symbols: list[str] = Field(["BTCUSDT"], min_length=1, description="Bybit symbols to stream, e.g. BTCUSDT")
    interval: str = Field("1m", description="candle interval: 1m 3m 5m 15m 30m 1h 2h 4h 6h 12h 1d 1w")

    @field_validator("symbols")
    @classmethod
    def _bybit_symbols(cls, value: list[str]) -> list[str]:
        for symbol in value:
            if not _SYMBOL.match(symbol):
                raise ValueError(f"{symbol!r} is not a Bybit symbol (upper-case letters and digits, e.g. BTCUSDT)")
        duplicates = sorted({s for s in value if value.count(s) > 1})
        if duplicates:
            raise ValueError(f"listed more than once: {', '.join(duplicates)}")
        return value

    @field_validator("interval")
    @classmethod
    def _known_interval(cls, value: str) -> str:
        if value not in FEED_INTERVALS:
            raise ValueError(f"unknown interval; use one of {' '.join(FEED_INTERVALS)}")
        return value


class TrainSettings(_Section):
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

    @field_validator("net_arch")
    @classmethod
    def _layer_sizes(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        if any(not 1 <= size <= 4096 for size in value):
            raise ValueError("every layer size must be between 1 and 4096")
        return value


class RiskSettings(_Section):
    """Risk controls applied by the paper engine."""

    max_drawdown: float = Field(
        0.25, ge=0, le=1, description="go flat and stop opening positions beyond this drawdown from peak (0 = off)"
    )
    daily_loss_limit: float = Field(
        0.05, ge=0, le=1, description="go flat until the next UTC day beyond this loss from the day's start (0 = off)"
    )


class LedgerSettings(_Section):
    """The SQLite paper ledger (``state/``): where it lives and how it is written."""

    db_path: Path = Field(Path("shadow.sqlite"), description="ledger file; relative paths start in the working directory")
    lock_timeout_s: float = Field(
        5.0, gt=0, le=600, description="seconds to wait for another writer's lock before failing with a clear error"
    )
    synchronous: Literal["NORMAL", "FULL"] = Field(
        "NORMAL",
        description="SQLite synchronous level: NORMAL survives a crashed process (replays are idempotent); "
        "FULL also fsyncs every commit against power loss",
    )


_STRATEGY_SPEC = re.compile(r"^[A-Za-z_]+(:.+)?$")


def _check_spec(value: str) -> str:
    """Syntax only (``name`` or ``name:args``): names are checked when the strategy is built,
    since config imports nothing of ours."""
    if not _STRATEGY_SPEC.match(value.strip()):
        raise ValueError("must be a strategy spec such as 'sma:fast=10,slow=50', 'buy_and_hold' or 'ppo:PATH'")
    return value.strip()


class EvaluationSettings(_Section):
    """Backtests and walk-forward evaluation (``shadow backtest``, ``shadow evaluate``).
    Commission and slippage come from ``[env]``, so a backtest pays what training paid."""

    strategy: str = Field(
        "sma:fast=10,slow=50",
        description="strategy `shadow backtest` runs when --strategy is not given "
        "(e.g. 'ppo:models/x.zip', 'sma:fast=10,slow=50', 'rsi:period=14', 'random:seed=0')",
    )
    baselines: tuple[str, ...] = Field(
        ("sma:fast=10,slow=50", "rsi:period=14", "random:seed=0"),
        description="extra baselines compared with the strategy; buy_and_hold and flat are always shown",
    )
    train_candles: int = Field(14_400, ge=300, description="walk-forward: candles per training window (14,400 = 10 days of 1m)")
    test_candles: int = Field(2_880, ge=2, description="walk-forward: candles per out-of-sample test slice")
    step_candles: int | None = Field(
        None, ge=1, description="walk-forward: how far the window moves per fold (default: test_candles, no overlap)"
    )
    max_folds: int | None = Field(None, ge=1, description="walk-forward: stop after this many folds (default: all that fit)")
    total_timesteps: int = Field(
        50_000, ge=64, description="walk-forward: PPO timesteps per fold (other hyperparameters come from [train])"
    )
    seed: int = Field(0, ge=0, description="walk-forward: seed of fold 1 (fold k uses seed + k - 1)")

    @field_validator("strategy")
    @classmethod
    def _strategy_spec(cls, value: str) -> str:
        return _check_spec(value)

    @field_validator("baselines")
    @classmethod
    def _baseline_specs(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(_check_spec(v) for v in value)


class DaemonSettings(_Section):
    """``shadow run``: which strategy trades, and how the service reports on itself.
    Symbols and interval are in ``[feed]``, the account in ``[env]``, limits in ``[risk]``."""

    strategy: str = Field(
        "registry",
        description="'registry' (the promoted model of the model registry) or any strategy spec "
        "('ppo:models/x.zip', 'sma:fast=10,slow=50', 'flat', ...)",
    )
    fallback: str = Field(
        "flat", description="baseline traded while the registry has no promoted model (cold start); recorded per decision"
    )
    warmup_candles: int = Field(
        1000, ge=220, le=100_000,
        description="closed candles fetched over REST at first start to warm up the features and the observation",
    )
    heartbeat_minutes: float = Field(5.0, gt=0, description="minutes between status lines in the log")
    torch_threads: int = Field(1, ge=1, le=64, description="torch threads for model inference (share the cores with the trainer)")

    @field_validator("strategy", "fallback")
    @classmethod
    def _spec_shape(cls, value: str) -> str:
        if not _STRATEGY_SPEC.match(value.strip()):
            raise ValueError("expected 'registry' or a strategy spec such as 'flat', 'sma:fast=10,slow=50' or 'ppo:PATH'")
        return value.strip()


class ComputeSettings(_Section):
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
_UNIFORM_RANGES = ("reward_unrealized", "reward_losing_hold", "reward_inactivity")


class SearchSpaceSettings(_Section):
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

    @field_validator("*")
    @classmethod
    def _valid_entries(cls, value: list[Any], info: ValidationInfo) -> list[Any]:
        name = info.field_name
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


class TuneSettings(_Section):
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


_LISTEN = re.compile(r"^(?:(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):)?(?P<port>\d{1,5})$")
LOOPBACK = "127.0.0.1"


def parse_listen(value: str) -> tuple[str, int]:
    """``HOST:PORT``, ``[IPv6]:PORT`` or a bare ``PORT`` (on the loopback address) as ``(host, port)``.

    Raises:
        ValueError: anything else, or a port above 65535.
    """
    match = _LISTEN.match(value.strip())
    if not match or int(match["port"]) > 65_535:
        raise ValueError("expected HOST:PORT or PORT (e.g. 127.0.0.1:9108), with a port from 0 to 65535")
    return (match["host"] or LOOPBACK).strip("[]"), int(match["port"])


class ServiceSettings(_Section):
    """Running ``shadow run`` as a service: its HTTP endpoints, the health rule, logs and backups."""

    http: str = Field(
        "", description="serve /health, /metrics and /status on HOST:PORT (a bare PORT listens on 127.0.0.1); "
        "empty: no HTTP server"
    )
    health_max_age_intervals: float = Field(
        2.0, ge=1, le=100,
        description="/health fails when a symbol's newest candle closed more than this many candle intervals "
        "(plus health_margin_s) ago",
    )
    health_margin_s: float = Field(
        30.0, ge=0, le=3600,
        description="seconds added to that age: the exchange's push delay and the local clock's offset from the exchange's",
    )
    min_free_disk_mb: float = Field(
        200.0, ge=0, description="/health and `shadow doctor` fail when the ledger's disk has less free space than this"
    )
    log_format: Literal["text", "json", "journal"] = Field(
        "text", description="log lines: text (human-readable), json (one JSON object per line) or journal "
        "(systemd priority prefixes, no timestamp: journald adds its own)"
    )
    log_file: Path | None = Field(None, description="also write the log to this file, rotated by size; unset: stderr only")
    log_max_mb: float = Field(50.0, gt=0, description="rotate log_file when it reaches this size")
    log_backups: int = Field(5, ge=1, le=1000, description="rotated log files kept beside log_file")
    backup_dir: Path = Field(Path("backups"), description="where `shadow backup` writes when --out is not given")

    @field_validator("http")
    @classmethod
    def _listen_address(cls, value: str) -> str:
        if value.strip():
            parse_listen(value)
        return value.strip()


class RetrainSettings(_Section):
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


class Settings(BaseSettings):
    """Every setting of Shadow. Sections map to TOML tables (``[env]``, ``[exchange]``...)."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_nested_delimiter=ENV_NESTED_DELIMITER, extra="forbid", frozen=True,
        validate_default=True,
    )

    env: EnvSettings = EnvSettings()
    exchange: ExchangeSettings = ExchangeSettings()
    feed: FeedSettings = FeedSettings()
    train: TrainSettings = TrainSettings()
    risk: RiskSettings = RiskSettings()
    ledger: LedgerSettings = LedgerSettings()
    evaluation: EvaluationSettings = EvaluationSettings()
    daemon: DaemonSettings = DaemonSettings()
    compute: ComputeSettings = ComputeSettings()
    tune: TuneSettings = TuneSettings()
    service: ServiceSettings = ServiceSettings()
    retrain: RetrainSettings = RetrainSettings()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: tuple[PydanticBaseSettingsSource, ...] = (init_settings, env_settings)
        path = _config_file.get()
        if path is not None:
            sources += (TomlConfigSettingsSource(settings_cls, toml_file=path),)
        return sources


def load_settings(config_file: str | Path | None = None, **overrides: Any) -> Settings:
    """Build and validate the settings.

    Args:
        config_file: a TOML file; defaults to ``$SHADOW_CONFIG`` when set.
        overrides: section dictionaries from the CLI, e.g. ``env={"commission": 0.001}``.

    Raises:
        ConfigError: a missing or malformed file, an unknown key, or an invalid value.
    """
    path = Path(config_file) if config_file else (Path(os.environ[CONFIG_PATH_VARIABLE]) if os.environ.get(CONFIG_PATH_VARIABLE) else None)
    if path is not None:
        _check_toml(path)
    token = _config_file.set(path)
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, path)) from None
    finally:
        _config_file.reset(token)


def _check_toml(path: Path) -> None:
    if not path.is_file():
        raise ConfigError(f"config file {path}: not found")
    try:
        tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config file {path}: not valid TOML ({exc})") from None


def _describe(exc: ValidationError, path: Path | None) -> str:
    """One line per problem: ``env.commission = -1 (SHADOW_ENV__COMMISSION or [env] commission in x.toml): ...``"""
    lines = []
    for error in exc.errors():
        loc = [str(part) for part in error["loc"]]
        field = ".".join(loc)
        env_var = ENV_PREFIX + ENV_NESTED_DELIMITER.join(part.upper() for part in loc)
        table = f"[{'.'.join(loc[:-1])}] {loc[-1]}" if len(loc) > 1 else loc[0]
        where = f"set by {env_var}" if env_var in os.environ else (f"{table} in {path}" if path else "")
        message = error["msg"]
        if error["type"] == "extra_forbidden":
            lines.append(f"unknown setting {field!r}" + (f" ({where})" if where else ""))
            continue
        value = error.get("input")
        lines.append(f"invalid value for {field}: {value!r}" + (f" ({where})" if where else "") + f": {message}")
    return "invalid configuration:\n  " + "\n  ".join(lines)
