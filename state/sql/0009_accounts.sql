-- Schema version 9: accounts. Several strategies paper-trade side by side on the same
-- candles, each in its own account (config.accounts): the account is part of every
-- decision, fill, trade, position, equity, funding and risk-event row, and of the decision
-- key (account, symbol, open_time_ms). Rows written before version 9 belong to the one
-- account a configuration without [[accounts]] has: 'main'.
--
-- Every such table is rebuilt the freqtrade way (move aside, create, copy, drop) because
-- its key changes or because a NOT NULL column without a default cannot be added in place;
-- ids are copied, so every link between the rows survives. The keys of the tables written
-- at every candle put the account last, (symbol, open_time_ms, account): all the accounts'
-- rows of a candle are neighbours in one page, so an account more writes its rows, not
-- more pages. legacy_alter_table keeps the
-- renames from rewriting the foreign keys of the tables not yet rebuilt. The views are
-- dropped first and created again below, each with the account and grouped by it.

DROP VIEW v_decisions;
DROP VIEW v_trades;
DROP VIEW v_equity_curve;
DROP VIEW v_daily_pnl;
DROP VIEW v_model_performance;
DROP VIEW v_funding;
DROP INDEX decisions_model;
DROP INDEX fills_opening;
DROP INDEX trades_exit;
DROP INDEX trades_entry_decision;
DROP INDEX trades_entry;
DROP INDEX trades_exit_time;
DROP INDEX risk_events_time;
DROP INDEX funding_time;

PRAGMA legacy_alter_table = ON;
ALTER TABLE decisions RENAME TO decisions_v8;
ALTER TABLE fills RENAME TO fills_v8;
ALTER TABLE trades RENAME TO trades_v8;
ALTER TABLE positions RENAME TO positions_v8;
ALTER TABLE equity RENAME TO equity_v8;
ALTER TABLE risk_events RENAME TO risk_events_v8;
ALTER TABLE funding RENAME TO funding_v8;
PRAGMA legacy_alter_table = OFF;

CREATE TABLE decisions (
    decision_id   INTEGER PRIMARY KEY,
    account       TEXT    NOT NULL,
    symbol        TEXT    NOT NULL,
    interval      TEXT    NOT NULL,
    open_time_ms  INTEGER NOT NULL,
    action        INTEGER NOT NULL CHECK (action BETWEEN 0 AND 3),
    obs_hash      TEXT    NOT NULL,
    strategy      TEXT,
    model_version TEXT,
    latency_ms    REAL    NOT NULL CHECK (latency_ms >= 0),
    decided_ms    INTEGER NOT NULL,
    run_id        INTEGER REFERENCES runs (run_id),
    UNIQUE (symbol, open_time_ms, account),
    FOREIGN KEY (symbol, interval, open_time_ms) REFERENCES candles (symbol, interval, open_time_ms)
);
INSERT INTO decisions
SELECT decision_id, 'main', symbol, interval, open_time_ms, action, obs_hash, strategy, model_version, latency_ms,
       decided_ms, run_id
FROM decisions_v8;
CREATE INDEX decisions_model ON decisions (model_version);

CREATE TABLE fills (
    fill_id       INTEGER PRIMARY KEY,
    decision_id   INTEGER NOT NULL REFERENCES decisions (decision_id),
    seq           INTEGER NOT NULL CHECK (seq >= 0),
    account       TEXT    NOT NULL,
    symbol        TEXT    NOT NULL,
    time_ms       INTEGER NOT NULL,
    side          INTEGER NOT NULL CHECK (side IN (-1, 1)),
    opens         INTEGER NOT NULL CHECK (opens IN (0, 1)),
    qty           REAL    NOT NULL,
    price         REAL    NOT NULL,
    market_price  REAL    NOT NULL,
    fee           REAL    NOT NULL,
    slippage_cost REAL    NOT NULL,
    UNIQUE (decision_id, seq)
);
INSERT INTO fills
SELECT fill_id, decision_id, seq, 'main', symbol, time_ms, side, opens, qty, price, market_price, fee, slippage_cost
FROM fills_v8;
CREATE INDEX fills_opening ON fills (account, symbol, time_ms) WHERE opens = 1;

CREATE TABLE trades (
    trade_id          INTEGER PRIMARY KEY,
    account           TEXT    NOT NULL,
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
    funding           REAL    NOT NULL DEFAULT 0,
    entry_decision_id INTEGER REFERENCES decisions (decision_id),
    exit_decision_id  INTEGER NOT NULL UNIQUE REFERENCES decisions (decision_id)
);
INSERT INTO trades
SELECT trade_id, 'main', symbol, side, qty, entry_time_ms, exit_time_ms, entry_price, exit_price, gross_pnl, fees,
       net_pnl, funding, entry_decision_id, exit_decision_id
FROM trades_v8;
CREATE INDEX trades_exit ON trades (account, symbol, exit_time_ms);
CREATE INDEX trades_entry_decision ON trades (entry_decision_id);
CREATE INDEX trades_entry ON trades (symbol, entry_time_ms);
CREATE INDEX trades_exit_time ON trades (exit_time_ms);

-- One row per account and symbol: the account after its last decision on the symbol.
CREATE TABLE positions (
    account               TEXT    NOT NULL,
    symbol                TEXT    NOT NULL,
    interval              TEXT    NOT NULL,
    open_time_ms          INTEGER NOT NULL,
    decision_id           INTEGER NOT NULL REFERENCES decisions (decision_id),
    initial_balance       REAL    NOT NULL,
    cash                  REAL    NOT NULL,
    side                  INTEGER NOT NULL CHECK (side IN (-1, 0, 1)),
    qty                   REAL    NOT NULL,
    entry_price           REAL    NOT NULL,
    entry_time_ms         INTEGER NOT NULL,
    entry_fee             REAL    NOT NULL,
    last_price            REAL    NOT NULL,
    fees_paid             REAL    NOT NULL,
    realized_pnl          REAL    NOT NULL,
    n_trades              INTEGER NOT NULL,
    n_wins                INTEGER NOT NULL,
    peak_equity           REAL    NOT NULL,
    max_drawdown          REAL    NOT NULL,
    funding_paid          REAL    NOT NULL DEFAULT 0,
    position_funding      REAL    NOT NULL DEFAULT 0,
    equity                REAL    NOT NULL,
    unrealized_pnl        REAL    NOT NULL,
    risk_day              INTEGER NOT NULL,
    risk_day_start_equity REAL    NOT NULL,
    risk_drawdown_stopped INTEGER NOT NULL CHECK (risk_drawdown_stopped IN (0, 1)),
    risk_daily_stopped    INTEGER NOT NULL CHECK (risk_daily_stopped IN (0, 1)),
    PRIMARY KEY (account, symbol)
);
INSERT INTO positions
SELECT 'main', symbol, interval, open_time_ms, decision_id, initial_balance, cash, side, qty, entry_price,
       entry_time_ms, entry_fee, last_price, fees_paid, realized_pnl, n_trades, n_wins, peak_equity, max_drawdown,
       funding_paid, position_funding, equity, unrealized_pnl, risk_day, risk_day_start_equity, risk_drawdown_stopped, risk_daily_stopped
FROM positions_v8;

CREATE TABLE equity (
    account        TEXT    NOT NULL,
    symbol         TEXT    NOT NULL,
    open_time_ms   INTEGER NOT NULL,
    decision_id    INTEGER NOT NULL UNIQUE REFERENCES decisions (decision_id),
    close          REAL    NOT NULL,
    side           INTEGER NOT NULL CHECK (side IN (-1, 0, 1)),
    cash           REAL    NOT NULL,
    unrealized_pnl REAL    NOT NULL,
    equity         REAL    NOT NULL,
    realized_pnl   REAL    NOT NULL,
    fees_paid      REAL    NOT NULL,
    drawdown       REAL    NOT NULL,
    funding_paid   REAL    NOT NULL DEFAULT 0,
    PRIMARY KEY (symbol, open_time_ms, account)
) WITHOUT ROWID;
INSERT INTO equity
SELECT 'main', symbol, open_time_ms, decision_id, close, side, cash, unrealized_pnl, equity, realized_pnl, fees_paid,
       drawdown, funding_paid
FROM equity_v8;

CREATE TABLE risk_events (
    event_id  INTEGER PRIMARY KEY,
    account   TEXT    NOT NULL,
    symbol    TEXT,
    time_ms   INTEGER NOT NULL,
    kind      TEXT    NOT NULL,
    detail    TEXT,
    run_id    INTEGER REFERENCES runs (run_id)
);
INSERT INTO risk_events SELECT event_id, 'main', symbol, time_ms, kind, detail, run_id FROM risk_events_v8;
CREATE INDEX risk_events_time ON risk_events (time_ms);

-- An account settles a funding time of a symbol once: (symbol, time_ms, account) is the key.
CREATE TABLE funding (
    funding_id   INTEGER PRIMARY KEY,
    decision_id  INTEGER NOT NULL UNIQUE REFERENCES decisions (decision_id),
    account      TEXT    NOT NULL,
    symbol       TEXT    NOT NULL,
    time_ms      INTEGER NOT NULL,
    rate         REAL    NOT NULL,
    price        REAL    NOT NULL,
    side         INTEGER NOT NULL CHECK (side IN (-1, 1)),
    qty          REAL    NOT NULL,
    amount       REAL    NOT NULL,
    UNIQUE (symbol, time_ms, account)
);
INSERT INTO funding
SELECT funding_id, decision_id, 'main', symbol, time_ms, rate, price, side, qty, amount FROM funding_v8;

DROP TABLE funding_v8;
DROP TABLE risk_events_v8;
DROP TABLE equity_v8;
DROP TABLE positions_v8;
DROP TABLE trades_v8;
DROP TABLE fills_v8;
DROP TABLE decisions_v8;

CREATE VIEW v_decisions AS
SELECT d.decision_id,
       d.account,
       d.symbol,
       datetime(d.open_time_ms / 1000, 'unixepoch') AS candle_time,
       CASE d.action WHEN 0 THEN 'HOLD' WHEN 1 THEN 'BUY' WHEN 2 THEN 'SELL' WHEN 3 THEN 'CLOSE' END AS action,
       c.close,
       d.strategy,
       d.model_version,
       d.latency_ms,
       datetime(d.decided_ms / 1000, 'unixepoch') AS decided_at,
       (SELECT count(*) FROM fills f WHERE f.decision_id = d.decision_id) AS fills,
       d.obs_hash,
       d.run_id,
       d.open_time_ms
FROM decisions d
JOIN candles c USING (symbol, interval, open_time_ms);

CREATE VIEW v_trades AS
SELECT t.trade_id,
       t.account,
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
       t.funding,
       t.net_pnl,
       100.0 * t.net_pnl / (t.qty * t.entry_price) AS return_pct,
       d.strategy,
       d.model_version,
       t.entry_time_ms,
       t.exit_time_ms
FROM trades t
LEFT JOIN decisions d ON d.decision_id = t.entry_decision_id;

CREATE VIEW v_equity_curve AS
SELECT e.account,
       e.symbol,
       datetime(e.open_time_ms / 1000, 'unixepoch') AS candle_time,
       e.close,
       CASE e.side WHEN 1 THEN 'long' WHEN -1 THEN 'short' ELSE 'flat' END AS position,
       e.cash,
       e.unrealized_pnl,
       e.equity,
       e.realized_pnl,
       e.fees_paid,
       e.funding_paid,
       e.drawdown,
       e.open_time_ms
FROM equity e;

CREATE VIEW v_daily_pnl AS
WITH day_ends AS (
    SELECT account, symbol, date(open_time_ms / 1000, 'unixepoch') AS day, max(open_time_ms) AS last_ms,
           count(*) AS decisions
    FROM equity GROUP BY account, symbol, day
), closed AS (
    SELECT account, symbol, date(exit_time_ms / 1000, 'unixepoch') AS day, count(*) AS trades,
           sum(net_pnl > 0) AS wins, sum(net_pnl) AS realized_net_pnl, sum(fees) AS fees
    FROM trades GROUP BY account, symbol, day
), settled AS (
    SELECT account, symbol, date(time_ms / 1000, 'unixepoch') AS day, sum(amount) AS funding
    FROM funding GROUP BY account, symbol, day
)
SELECT d.account,
       d.symbol,
       d.day,
       d.decisions,
       coalesce(c.trades, 0) AS trades,
       coalesce(c.wins, 0) AS wins,
       coalesce(c.realized_net_pnl, 0.0) AS realized_net_pnl,
       coalesce(c.fees, 0.0) AS trade_fees,
       coalesce(s.funding, 0.0) AS funding,
       e.equity AS end_equity,
       e.equity - coalesce(lag(e.equity) OVER (PARTITION BY d.account, d.symbol ORDER BY d.day),
                           p.initial_balance) AS pnl
FROM day_ends d
JOIN equity e ON e.account = d.account AND e.symbol = d.symbol AND e.open_time_ms = d.last_ms
JOIN positions p ON p.account = d.account AND p.symbol = d.symbol
LEFT JOIN closed c ON c.account = d.account AND c.symbol = d.symbol AND c.day = d.day
LEFT JOIN settled s ON s.account = d.account AND s.symbol = d.symbol AND s.day = d.day;

-- Trades are credited to the model whose decision opened them, in the account that traded;
-- so is their funding.
CREATE VIEW v_model_performance AS
WITH made AS (
    SELECT account, strategy, model_version, count(*) AS decisions, avg(latency_ms) AS avg_latency_ms,
           min(open_time_ms) AS first_ms, max(open_time_ms) AS last_ms
    FROM decisions GROUP BY account, strategy, model_version
), opened AS (
    SELECT d.account, d.strategy, d.model_version, count(*) AS trades, sum(t.net_pnl > 0) AS wins,
           sum(t.net_pnl) AS net_pnl, sum(t.fees) AS fees, sum(t.funding) AS funding
    FROM trades t JOIN decisions d ON d.decision_id = t.entry_decision_id
    GROUP BY d.account, d.strategy, d.model_version
)
SELECT m.account,
       m.strategy,
       m.model_version,
       m.decisions,
       coalesce(o.trades, 0) AS trades,
       coalesce(o.wins, 0) AS wins,
       CASE WHEN o.trades > 0 THEN 1.0 * o.wins / o.trades ELSE 0.0 END AS win_rate,
       coalesce(o.net_pnl, 0.0) AS net_pnl,
       coalesce(o.fees, 0.0) AS fees,
       coalesce(o.funding, 0.0) AS funding,
       CASE WHEN o.trades > 0 THEN o.net_pnl / o.trades END AS avg_net_pnl,
       m.avg_latency_ms,
       datetime(m.first_ms / 1000, 'unixepoch') AS first_candle,
       datetime(m.last_ms / 1000, 'unixepoch') AS last_candle
FROM made m
LEFT JOIN opened o ON o.account = m.account AND o.strategy IS m.strategy AND o.model_version IS m.model_version;

CREATE VIEW v_funding AS
SELECT f.funding_id,
       f.account,
       f.symbol,
       datetime(f.time_ms / 1000, 'unixepoch') AS funding_time,
       CASE f.side WHEN 1 THEN 'long' ELSE 'short' END AS side,
       f.qty,
       f.price,
       f.rate,
       f.amount,
       CASE WHEN f.amount >= 0 THEN 'paid' ELSE 'received' END AS direction,
       d.strategy,
       d.model_version,
       f.time_ms
FROM funding f
JOIN decisions d ON d.decision_id = f.decision_id;
