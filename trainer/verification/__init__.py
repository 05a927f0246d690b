"""``shadow verify``: a live ledger replayed through the backtest by the strategies that took its
decisions, and compared with the backtest bit for bit."""
