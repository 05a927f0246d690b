"""Decision makers behind one protocol: the PPO policy and the baselines."""
