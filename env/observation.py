"""The observation vector, built the same way by the env and by the live daemon.

Layout (float32, length ``15 x lookback_window + 5``): the last ``lookback_window``
feature rows, oldest first, flattened row by row, then the five portfolio features:

=====================  ===============================================================
``balance``            ``100 x (cash / initial_balance - 1)`` (realised, in percent)
``position``           -1 short, 0 flat, +1 long
``unrealized_pnl``     ``100 x unrealised PnL / initial_balance``
``total_pnl``          ``100 x (equity / initial_balance - 1)``
``max_drawdown``       ``100 x`` the largest peak-to-trough equity drop so far
=====================  ===============================================================
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from env.features import N_FEATURES
from env.portfolio import Portfolio
from env.types import Observation

PORTFOLIO_FEATURE_NAMES: tuple[str, ...] = ("balance", "position", "unrealized_pnl", "total_pnl", "max_drawdown")
N_PORTFOLIO_FEATURES = len(PORTFOLIO_FEATURE_NAMES)


def observation_size(lookback_window: int) -> int:
    return N_FEATURES * lookback_window + N_PORTFOLIO_FEATURES


def build_observation(window: npt.NDArray[np.float32], portfolio: Portfolio) -> Observation:
    """Observation from ``window`` (``(lookback, 15)`` float32 feature rows, oldest first)
    and the account marked at the window's last close."""
    n = window.size
    obs = np.empty(n + N_PORTFOLIO_FEATURES, dtype=np.float32)
    obs[:n] = window.reshape(-1)
    initial = portfolio.config.initial_balance
    unrealized = portfolio.unrealized_pnl
    obs[n:] = (
        100.0 * (portfolio.cash / initial - 1.0),
        portfolio.side,
        100.0 * unrealized / initial,
        100.0 * ((portfolio.cash + unrealized) / initial - 1.0),
        100.0 * portfolio.max_drawdown,
    )
    return obs
