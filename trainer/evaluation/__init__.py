"""Judging strategies on candles they never saw: backtests, metrics, walk-forward folds, their files and charts."""
