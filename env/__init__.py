"""Candles, causal features, the portfolio/fill model, the reward and ``CryptoTradingEnv``.

Nothing in this package knows about SQLite or sockets: the backtester and the live daemon
call into it, so training, backtest and live share one implementation.
"""
