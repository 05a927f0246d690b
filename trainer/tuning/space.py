"""The search space of ``shadow tune``: ``[tune.space]`` to Optuna suggestions and back to settings.

Each searched name maps onto one setting (``learning_rate`` -> ``[train] learning_rate``,
``lookback_window`` -> ``[env] lookback_window``, ``reward_unrealized`` -> ``[env.reward]
unrealized`` ...), so a trial's parameters are a settings overlay and the best trial
becomes a config file that ``shadow train`` reads.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from config.settings import SearchSpaceSettings, Settings

if TYPE_CHECKING:
    import optuna

LOG_RANGES = ("learning_rate", "ent_coef")
UNIFORM_RANGES = ("reward_unrealized", "reward_losing_hold", "reward_inactivity", "reward_fee_multiplier")
ENV_PARAMS = ("lookback_window",)
REWARD_PREFIX = "reward_"


def arch_label(layers: tuple[int, ...] | list[int]) -> str:
    """``(128, 64)`` -> ``"128x64"``: Optuna's categorical choices must be plain values."""
    return "x".join(str(size) for size in layers)


def parse_arch(label: str) -> tuple[int, ...]:
    return tuple(int(size) for size in label.split("x"))


def suggest(trial: optuna.Trial, space: SearchSpaceSettings) -> dict[str, Any]:
    """Ask ``trial`` for a value of every searched parameter (empty entries are skipped)."""
    params: dict[str, Any] = {}
    for name, values in space:
        if not values:
            continue
        if name in LOG_RANGES or name in UNIFORM_RANGES:
            params[name] = trial.suggest_float(name, float(values[0]), float(values[1]), log=name in LOG_RANGES)
        elif name == "net_arch":
            params[name] = trial.suggest_categorical(name, [arch_label(v) for v in values])
        else:
            params[name] = trial.suggest_categorical(name, list(values))
    return params


def apply(settings: Settings, params: dict[str, Any]) -> Settings:
    """``settings`` with a trial's parameters written into ``[train]``, ``[env]`` and ``[env.reward]``."""
    train: dict[str, Any] = {}
    env: dict[str, Any] = {}
    reward: dict[str, Any] = {}
    for name, value in params.items():
        if name == "net_arch":
            train[name] = parse_arch(value)
        elif name in ENV_PARAMS:
            env[name] = value
        elif name.startswith(REWARD_PREFIX):
            reward[name.removeprefix(REWARD_PREFIX)] = value
        else:
            train[name] = value
    new_env = settings.env.model_copy(update=env | {"reward": settings.env.reward.model_copy(update=reward)})
    return settings.model_copy(update={"train": settings.train.model_copy(update=train), "env": new_env})


def lookback_range(settings: Settings) -> tuple[int, int]:
    """Smallest and largest lookback a trial can use: they bound the warm-up every fold needs."""
    choices = settings.tune.space.lookback_window or [settings.env.lookback_window]
    return min(choices), max(choices)


SHORT_NAMES = {"learning_rate": "lr", "n_steps": "steps", "batch_size": "batch", "ent_coef": "ent", "net_arch": "net",
               "lookback_window": "lookback", "reward_unrealized": "w_unreal", "reward_losing_hold": "w_hold",
               "reward_inactivity": "w_idle", "reward_fee_multiplier": "fee_x"}


def describe_params(params: dict[str, Any]) -> str:
    """One line for tables: ``lr=3e-04 steps=512 net=64x64 ...``."""
    return " ".join(f"{SHORT_NAMES.get(k, k)}={v:.3g}" if isinstance(v, float) else f"{SHORT_NAMES.get(k, k)}={v}"
                    for k, v in params.items())
