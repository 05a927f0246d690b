"""Profiles: named bundles of defaults for the learning setup.

A profile sits between the settings' own defaults and everything a user sets: an explicit
value in the TOML file, a ``SHADOW_*`` variable or a command-line flag always wins over it
(``shadow config`` shows where each value came from). The field defaults of every section
are the seed's, so ``EnvSettings()`` is the seed's env and ``CryptoTradingEnv``'s own
constructor is unchanged; the profile is applied when the settings are loaded
(:func:`config.settings.load_settings`, ``Settings()``).

- ``seed``: nothing over the field defaults, i.e. exactly the seed's setup: four trade
  actions, the five-part reward, SB3's ``n_steps`` 2048 per env, batch 64, every seed default.
- ``default``: the setup that converges. Many more PPO updates per timestep (a rollout of
  256 steps per env, batch 256: about 8x the seed's updates), the account's net change as
  the reward (fees included; no inactivity charge, which paid the agent to trade) with the
  fees charged twice in training (the turnover knob: out of sample it cut the fees of 1m
  policies from 12.5% to 1.3% of capital per three weeks), and target-position actions
  (short/flat/long), which cannot get stuck holding a position.
  ``shadow tune`` searches the fee multiplier instead of the seed reward's weights.
  The figures behind each value: README "Evaluation" and ``benchmarks/bench_learning.py``.
"""

from __future__ import annotations

from typing import Any, Literal, get_args

Profile = Literal["default", "seed"]
PROFILE_NAMES: tuple[str, ...] = get_args(Profile)
DEFAULT_PROFILE: Profile = "default"

PROFILES: dict[str, dict[str, Any]] = {
    "seed": {},
    "default": {
        "train": {"n_steps": 256, "batch_size": 256},
        "env": {"action_mode": "target", "reward": {"mode": "net", "inactivity": 0.0, "fee_multiplier": 2.0}},
        # the net reward has no component weights to search; its knob is the fee multiplier
        "tune": {"space": {"reward_unrealized": [], "reward_losing_hold": [], "reward_inactivity": [],
                           "reward_fee_multiplier": [1.0, 3.0]}},
    },
}
"""Each profile's values, as a nested settings overlay (section -> field -> value)."""


def profile_values(name: str) -> dict[str, Any]:
    """The overlay of profile ``name`` (empty for an unknown name: validation names it)."""
    return PROFILES.get(name, {})
