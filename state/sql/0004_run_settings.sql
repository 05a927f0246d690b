-- Schema version 4: each daemon session records the settings it ran with, as the JSON text
-- that runs.config_hash hashes. `shadow verify` replays the ledger's candles with the very
-- commission, slippage, lookback window, risk limits and strategy specs that took its
-- decisions. Sessions recorded before version 4 keep NULL (verify then uses the configured
-- settings, and says so).
ALTER TABLE runs ADD COLUMN settings TEXT CHECK (settings IS NULL OR json_valid(settings));
