"""Historical data, PPO training (the seed's ``train_ppo``), evaluation and the model registry."""
