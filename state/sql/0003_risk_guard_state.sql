-- Schema version 3: the risk guard's state travels with the position, so a restarted
-- daemon resumes the drawdown stop and the daily loss limit exactly where they were.
-- Rows written by version 2 get the guard's initial state (no stop, no day yet).
ALTER TABLE positions ADD COLUMN risk_day INTEGER NOT NULL DEFAULT -1;
ALTER TABLE positions ADD COLUMN risk_day_start_equity REAL NOT NULL DEFAULT 0;
ALTER TABLE positions ADD COLUMN risk_drawdown_stopped INTEGER NOT NULL DEFAULT 0 CHECK (risk_drawdown_stopped IN (0, 1));
ALTER TABLE positions ADD COLUMN risk_daily_stopped INTEGER NOT NULL DEFAULT 0 CHECK (risk_daily_stopped IN (0, 1));
