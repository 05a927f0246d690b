-- Schema version 2: the model registry, retrain and risk journals, and trade attribution.
-- trades is rebuilt to replace its closing-fill link with links to the decisions that opened
-- and closed the trade, so every trade can be credited to the model that opened it.
-- ALTER TABLE cannot add a NOT NULL foreign key or drop a UNIQUE column, hence the copy.

CREATE TABLE models (
    version         TEXT    PRIMARY KEY,
    parent_version  TEXT    REFERENCES models (version),
    status          TEXT    NOT NULL DEFAULT 'candidate'
                            CHECK (status IN ('candidate', 'promoted', 'rejected', 'retired')),
    path            TEXT    NOT NULL,
    sha256          TEXT    NOT NULL CHECK (length(sha256) = 64),
    symbol          TEXT,
    interval        TEXT,
    data_start_ms   INTEGER,
    data_end_ms     INTEGER,
    hyperparameters TEXT    NOT NULL DEFAULT '{}' CHECK (json_valid(hyperparameters)),
    metrics         TEXT    NOT NULL DEFAULT '{}' CHECK (json_valid(metrics)),
    created_ms      INTEGER NOT NULL,
    promoted_ms     INTEGER
);

CREATE TABLE retrain_runs (
    retrain_id        INTEGER PRIMARY KEY,
    started_ms        INTEGER NOT NULL,
    finished_ms       INTEGER,
    status            TEXT    NOT NULL DEFAULT 'running'
                              CHECK (status IN ('running', 'ok', 'failed', 'rejected', 'promoted')),
    reason            TEXT,
    candidate_version TEXT    REFERENCES models (version),
    metrics           TEXT    NOT NULL DEFAULT '{}' CHECK (json_valid(metrics))
);

CREATE TABLE risk_events (
    event_id  INTEGER PRIMARY KEY,
    symbol    TEXT,
    time_ms   INTEGER NOT NULL,
    kind      TEXT    NOT NULL,
    detail    TEXT,
    run_id    INTEGER REFERENCES runs (run_id)
);
CREATE INDEX risk_events_time ON risk_events (time_ms);

-- The freqtrade rebuild: move the old table aside, create the new one under the real name,
-- copy the rows, drop the old one. legacy_alter_table keeps the rename from rewriting the
-- views that name "trades" (v_daily_pnl), so they read the new table unchanged.
DROP VIEW v_trades;
PRAGMA legacy_alter_table = ON;
ALTER TABLE trades RENAME TO trades_v1;
PRAGMA legacy_alter_table = OFF;
DROP INDEX trades_exit;

CREATE TABLE trades (
    trade_id          INTEGER PRIMARY KEY,
    symbol            TEXT    NOT NULL,
    side              INTEGER NOT NULL CHECK (side IN (-1, 1)),
    qty               REAL    NOT NULL,
    entry_time_ms     INTEGER NOT NULL,
    exit_time_ms      INTEGER NOT NULL,
    entry_price       REAL    NOT NULL,
    exit_price        REAL    NOT NULL,
    gross_pnl         REAL    NOT NULL,
    fees              REAL    NOT NULL,
    net_pnl           REAL    NOT NULL,
    entry_decision_id INTEGER REFERENCES decisions (decision_id),
    exit_decision_id  INTEGER NOT NULL UNIQUE REFERENCES decisions (decision_id)
);
INSERT INTO trades
SELECT t.trade_id, t.symbol, t.side, t.qty, t.entry_time_ms, t.exit_time_ms, t.entry_price, t.exit_price,
       t.gross_pnl, t.fees, t.net_pnl,
       (SELECT o.decision_id FROM fills o
         WHERE o.symbol = t.symbol AND o.opens = 1 AND o.time_ms = t.entry_time_ms AND o.fill_id < t.fill_id
         ORDER BY o.fill_id DESC LIMIT 1),
       (SELECT x.decision_id FROM fills x WHERE x.fill_id = t.fill_id)
FROM trades_v1 t;
DROP TABLE trades_v1;
CREATE INDEX trades_exit ON trades (symbol, exit_time_ms);
CREATE INDEX trades_entry_decision ON trades (entry_decision_id);

CREATE VIEW v_trades AS
SELECT t.trade_id,
       t.symbol,
       CASE t.side WHEN 1 THEN 'long' ELSE 'short' END AS side,
       datetime(t.entry_time_ms / 1000, 'unixepoch') AS entry_time,
       datetime(t.exit_time_ms / 1000, 'unixepoch') AS exit_time,
       round((t.exit_time_ms - t.entry_time_ms) / 60000.0, 3) AS holding_minutes,
       t.qty,
       t.entry_price,
       t.exit_price,
       t.gross_pnl,
       t.fees,
       t.net_pnl,
       100.0 * t.net_pnl / (t.qty * t.entry_price) AS return_pct,
       d.strategy,
       d.model_version,
       t.entry_time_ms,
       t.exit_time_ms
FROM trades t
LEFT JOIN decisions d ON d.decision_id = t.entry_decision_id;

-- Trades are credited to the model whose decision opened them.
CREATE VIEW v_model_performance AS
WITH made AS (
    SELECT strategy, model_version, count(*) AS decisions, avg(latency_ms) AS avg_latency_ms,
           min(open_time_ms) AS first_ms, max(open_time_ms) AS last_ms
    FROM decisions GROUP BY strategy, model_version
), opened AS (
    SELECT d.strategy, d.model_version, count(*) AS trades, sum(t.net_pnl > 0) AS wins,
           sum(t.net_pnl) AS net_pnl, sum(t.fees) AS fees
    FROM trades t JOIN decisions d ON d.decision_id = t.entry_decision_id
    GROUP BY d.strategy, d.model_version
)
SELECT m.strategy,
       m.model_version,
       m.decisions,
       coalesce(o.trades, 0) AS trades,
       coalesce(o.wins, 0) AS wins,
       CASE WHEN o.trades > 0 THEN 1.0 * o.wins / o.trades END AS win_rate,
       coalesce(o.net_pnl, 0.0) AS net_pnl,
       coalesce(o.fees, 0.0) AS fees,
       CASE WHEN o.trades > 0 THEN o.net_pnl / o.trades END AS avg_net_pnl,
       m.avg_latency_ms,
       datetime(m.first_ms / 1000, 'unixepoch') AS first_candle,
       datetime(m.last_ms / 1000, 'unixepoch') AS last_candle
FROM made m
LEFT JOIN opened o ON o.strategy IS m.strategy AND o.model_version IS m.model_version;
