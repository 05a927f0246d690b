-- Schema version 10: promotion earned live, and policies served without torch.
--
-- A retrained candidate that passes the holdout gate may first trade as a challenger
-- account beside the incumbent for [retrain] live_trial_candles candles (live_trials); it
-- is promoted only if it beats the incumbent and flat on those candles. Meanwhile its
-- retraining run has the status 'trial' (retrain_runs is rebuilt: a CHECK constraint
-- cannot be changed in place).
--
-- models.policy_sha256: the sha256 of the policy's weights exported beside the model zip
-- (<version>.policy.npz), which the daemon serves with numpy alone; verified before loading,
-- like the zip's. NULL for models published without one (served through SB3).

PRAGMA legacy_alter_table = ON;
ALTER TABLE retrain_runs RENAME TO retrain_runs_v9;
PRAGMA legacy_alter_table = OFF;

CREATE TABLE retrain_runs (
    retrain_id        INTEGER PRIMARY KEY,
    started_ms        INTEGER NOT NULL,
    finished_ms       INTEGER,
    status            TEXT    NOT NULL DEFAULT 'running'
                              CHECK (status IN ('running', 'ok', 'failed', 'rejected', 'promoted', 'trial')),
    reason            TEXT,
    candidate_version TEXT    REFERENCES models (version),
    metrics           TEXT    NOT NULL DEFAULT '{}' CHECK (json_valid(metrics))
);
INSERT INTO retrain_runs SELECT * FROM retrain_runs_v9;
DROP TABLE retrain_runs_v9;

-- One live trial per retraining run whose candidate passed the holdout. The challenger
-- account starts on each symbol at the daemon's next candle with the incumbent account's
-- equity at that close (its positions.initial_balance), so the two compare directly.
CREATE TABLE live_trials (
    trial_id           INTEGER PRIMARY KEY,
    retrain_id         INTEGER NOT NULL UNIQUE REFERENCES retrain_runs (retrain_id),
    candidate_version  TEXT    NOT NULL REFERENCES models (version),
    challenger_account TEXT    NOT NULL UNIQUE,
    incumbent_account  TEXT    NOT NULL,
    symbols            TEXT    NOT NULL CHECK (json_valid(symbols)),
    candles            INTEGER NOT NULL CHECK (candles > 0),
    metric             TEXT    NOT NULL,
    margin             REAL    NOT NULL,
    status             TEXT    NOT NULL DEFAULT 'pending'
                               CHECK (status IN ('pending', 'running', 'promoted', 'retired')),
    created_ms         INTEGER NOT NULL,
    started_ms         INTEGER,
    finished_ms        INTEGER,
    reason             TEXT,
    metrics            TEXT    NOT NULL DEFAULT '{}' CHECK (json_valid(metrics))
);

ALTER TABLE models ADD COLUMN policy_sha256 TEXT CHECK (policy_sha256 IS NULL OR length(policy_sha256) = 64);
