# The seed README's "Backtesting" snippet, verbatim except for the import path
# (app.ml.environments.crypto_trading_env -> env.crypto_trading_env).
from stable_baselines3 import PPO
import pandas as pd
from env.crypto_trading_env import CryptoTradingEnv

# Load model
model = PPO.load("models/ppo_crypto_model/ppo_crypto_model_final.zip")

# Load test data
test_df = pd.read_csv("data/test_data.csv")
test_df['timestamp'] = pd.to_datetime(test_df['timestamp'])

# Create environment
env = CryptoTradingEnv(test_df, initial_balance=100.0)

# Run backtest
obs, info = env.reset()
done = False
total_reward = 0

while not done:
    action, _states = model.predict(obs, deterministic=True)
    obs, reward, terminated, truncated, info = env.step(action)
    total_reward += reward
    done = terminated or truncated

print(f"Final balance: ${info['balance']:.2f}")
print(f"Total PnL: ${info['total_pnl']:.2f}")
print(f"Win rate: {info['win_rate']*100:.1f}%")
print(f"Total trades: {info['total_trades']}")
