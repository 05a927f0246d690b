"""Hyperparameter search with Optuna, each trial scored by walk-forward folds."""
