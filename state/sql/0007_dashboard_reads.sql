-- Schema version 7: what the dashboard reads quickly, and a log of every promotion.
-- IF NOT EXISTS throughout: a ledger whose user_version was set back by hand (tests fake older
-- ledgers so) runs this step again cleanly.
--
-- Trade markers on the market chart look trades up by entry time as well as by exit time,
-- and the trade table sorts every symbol's trades by exit time.
CREATE INDEX IF NOT EXISTS trades_entry ON trades (symbol, entry_time_ms);
CREATE INDEX IF NOT EXISTS trades_exit_time ON trades (exit_time_ms);

-- models.promoted_ms keeps only a model's latest promotion, so a rollback (promoting an
-- older version again) overwrote the history. model_promotions keeps every promotion,
-- written by the triggers below whatever process promotes (the retrain runner, `shadow
-- models promote`): no writer changes, nothing to forget. replaced_version is the model
-- promoted before it for the same market (NULL for the first); a promotion whose model was
-- created before the one it replaces is a rollback.
CREATE TABLE IF NOT EXISTS model_promotions (
    promotion_id     INTEGER PRIMARY KEY,
    version          TEXT    NOT NULL REFERENCES models (version),
    symbol           TEXT,
    interval         TEXT,
    promoted_ms      INTEGER NOT NULL,
    replaced_version TEXT    REFERENCES models (version)
);
CREATE INDEX IF NOT EXISTS model_promotions_time ON model_promotions (promoted_ms);

-- The promotions before this version: one per model that carries a promoted_ms (its last).
INSERT INTO model_promotions (version, symbol, interval, promoted_ms, replaced_version)
SELECT version, symbol, interval, promoted_ms,
       lag(version) OVER (PARTITION BY symbol, interval ORDER BY promoted_ms, version)
FROM models WHERE promoted_ms IS NOT NULL AND NOT EXISTS (SELECT 1 FROM model_promotions)
ORDER BY promoted_ms, version;

CREATE TRIGGER IF NOT EXISTS model_promoted_on_update AFTER UPDATE OF status, promoted_ms ON models
WHEN NEW.status = 'promoted' AND NEW.promoted_ms IS NOT NULL
     AND (OLD.status IS NOT 'promoted' OR OLD.promoted_ms IS NOT NEW.promoted_ms)
BEGIN
    INSERT INTO model_promotions (version, symbol, interval, promoted_ms, replaced_version)
    VALUES (NEW.version, NEW.symbol, NEW.interval, NEW.promoted_ms,
            (SELECT p.version FROM model_promotions p
              WHERE p.symbol IS NEW.symbol AND p.interval IS NEW.interval
              ORDER BY p.promotion_id DESC LIMIT 1));
END;

CREATE TRIGGER IF NOT EXISTS model_promoted_on_insert AFTER INSERT ON models
WHEN NEW.status = 'promoted' AND NEW.promoted_ms IS NOT NULL
BEGIN
    INSERT INTO model_promotions (version, symbol, interval, promoted_ms, replaced_version)
    VALUES (NEW.version, NEW.symbol, NEW.interval, NEW.promoted_ms,
            (SELECT p.version FROM model_promotions p
              WHERE p.symbol IS NEW.symbol AND p.interval IS NEW.interval
              ORDER BY p.promotion_id DESC LIMIT 1));
END;
