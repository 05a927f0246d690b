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


def portfolio_features(portfolio: Portfolio) -> tuple[float, float, float, float, float]:
    """The five portfolio features, in :data:`PORTFOLIO_FEATURE_NAMES` order, from the
    account's own read-outs (nothing is recomputed here)."""
    initial = portfolio.config.initial_balance
    return (
        100.0 * (portfolio.cash / initial - 1.0),
        float(portfolio.side),
        100.0 * portfolio.unrealized_pnl / initial,
        100.0 * (portfolio.equity / initial - 1.0),
        100.0 * portfolio.max_drawdown,
    )


def build_observation(window: npt.NDArray[np.float32], portfolio: Portfolio) -> Observation:
    """Observation from ``window`` (``(lookback, 15)`` float32 feature rows, oldest first)
    and the account marked at the window's last close."""
    n = window.size
    obs = np.empty(n + N_PORTFOLIO_FEATURES, dtype=np.float32)
    obs[:n] = window.reshape(-1)
    obs[n:] = portfolio_features(portfolio)
    return obs


class ObservationTable:
    """Observations over a whole candle series, for the env's hot loop.

    Holds the float32 feature rows flattened, padded with :data:`N_PORTFOLIO_FEATURES`
    spare values, so an observation is one contiguous copy plus five writes; it equals
    :func:`build_observation` on the same window and account, bit for bit.
    """

    __slots__ = ("_flat", "_lookback")

    def __init__(self, features: npt.NDArray[np.float32], lookback_window: int) -> None:
        self._flat = np.concatenate((features.reshape(-1), np.zeros(N_PORTFOLIO_FEATURES, np.float32)))
        self._lookback = lookback_window

    def at(self, t: int, portfolio: Portfolio) -> Observation:
        """The observation at candle ``t`` (window ``t - lookback + 1 .. t``)."""
        end = (t + 1) * N_FEATURES
        obs = self._flat[end - self._lookback * N_FEATURES : end + N_PORTFOLIO_FEATURES].copy()
        obs[-N_PORTFOLIO_FEATURES:] = portfolio_features(portfolio)
        return obs
