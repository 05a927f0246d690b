"""Training PPO policies: the fit routine, its callbacks and model files, and the per-symbol and shared pipelines."""
