-- Schema version 1: the core paper ledger.
-- Times are INTEGER epoch milliseconds (UTC); money and quantities are REAL (IEEE doubles,
-- the same bits as the float64 Portfolio model). Views add readable ISO text times.

CREATE TABLE runs (
    run_id        INTEGER PRIMARY KEY,
    started_ms    INTEGER NOT NULL,
    stopped_ms    INTEGER,
    stop_reason   TEXT,
    config_hash   TEXT    NOT NULL,
    code_version  TEXT    NOT NULL,
    symbols       TEXT    NOT NULL DEFAULT '[]' CHECK (json_valid(symbols))
);

CREATE TABLE candles (
    symbol        TEXT    NOT NULL,
    interval      TEXT    NOT NULL,
    open_time_ms  INTEGER NOT NULL,
    open          REAL    NOT NULL,
    high          REAL    NOT NULL,
    low           REAL    NOT NULL,
    close         REAL    NOT NULL,
    volume        REAL    NOT NULL,
    PRIMARY KEY (symbol, interval, open_time_ms)
) WITHOUT ROWID;

CREATE TABLE decisions (
    decision_id   INTEGER PRIMARY KEY,
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
    UNIQUE (symbol, open_time_ms),
    FOREIGN KEY (symbol, interval, open_time_ms) REFERENCES candles (symbol, interval, open_time_ms)
);
CREATE INDEX decisions_model ON decisions (model_version);

CREATE TABLE fills (
    fill_id       INTEGER PRIMARY KEY,
    decision_id   INTEGER NOT NULL REFERENCES decisions (decision_id),
    seq           INTEGER NOT NULL CHECK (seq >= 0),
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
CREATE INDEX fills_opening ON fills (symbol, time_ms) WHERE opens = 1;

CREATE TABLE trades (
    trade_id      INTEGER PRIMARY KEY,
    fill_id       INTEGER NOT NULL UNIQUE REFERENCES fills (fill_id),
    symbol        TEXT    NOT NULL,
    side          INTEGER NOT NULL CHECK (side IN (-1, 1)),
    qty           REAL    NOT NULL,
    entry_time_ms INTEGER NOT NULL,
    exit_time_ms  INTEGER NOT NULL,
    entry_price   REAL    NOT NULL,
    exit_price    REAL    NOT NULL,
    gross_pnl     REAL    NOT NULL,
    fees          REAL    NOT NULL,
    net_pnl       REAL    NOT NULL
);
CREATE INDEX trades_exit ON trades (symbol, exit_time_ms);

-- One row per symbol: the account after the last decision. The columns from cash to
-- max_drawdown are env.portfolio.PortfolioState, so a restart restores it exactly.
CREATE TABLE positions (
    symbol          TEXT    PRIMARY KEY,
    interval        TEXT    NOT NULL,
    open_time_ms    INTEGER NOT NULL,
    decision_id     INTEGER NOT NULL REFERENCES decisions (decision_id),
    initial_balance REAL    NOT NULL,
    cash            REAL    NOT NULL,
    side            INTEGER NOT NULL CHECK (side IN (-1, 0, 1)),
    qty             REAL    NOT NULL,
    entry_price     REAL    NOT NULL,
    entry_time_ms   INTEGER NOT NULL,
    entry_fee       REAL    NOT NULL,
    last_price      REAL    NOT NULL,
    fees_paid       REAL    NOT NULL,
    realized_pnl    REAL    NOT NULL,
    n_trades        INTEGER NOT NULL,
    n_wins          INTEGER NOT NULL,
    peak_equity     REAL    NOT NULL,
    max_drawdown    REAL    NOT NULL,
    equity          REAL    NOT NULL,
    unrealized_pnl  REAL    NOT NULL
);

CREATE TABLE equity (
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
    PRIMARY KEY (symbol, open_time_ms)
) WITHOUT ROWID;

CREATE VIEW v_decisions AS
SELECT d.decision_id,
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
       t.entry_time_ms,
       t.exit_time_ms
FROM trades t;

CREATE VIEW v_equity_curve AS
SELECT e.symbol,
       datetime(e.open_time_ms / 1000, 'unixepoch') AS candle_time,
       e.close,
       CASE e.side WHEN 1 THEN 'long' WHEN -1 THEN 'short' ELSE 'flat' END AS position,
       e.cash,
       e.unrealized_pnl,
       e.equity,
       e.realized_pnl,
       e.fees_paid,
       e.drawdown,
       e.open_time_ms
FROM equity e;

CREATE VIEW v_daily_pnl AS
WITH day_ends AS (
    SELECT symbol, date(open_time_ms / 1000, 'unixepoch') AS day, max(open_time_ms) AS last_ms, count(*) AS decisions
    FROM equity GROUP BY symbol, day
), closed AS (
    SELECT symbol, date(exit_time_ms / 1000, 'unixepoch') AS day, count(*) AS trades,
           sum(net_pnl > 0) AS wins, sum(net_pnl) AS realized_net_pnl, sum(fees) AS fees
    FROM trades GROUP BY symbol, day
)
SELECT d.symbol,
       d.day,
       d.decisions,
       coalesce(c.trades, 0) AS trades,
       coalesce(c.wins, 0) AS wins,
       coalesce(c.realized_net_pnl, 0.0) AS realized_net_pnl,
       coalesce(c.fees, 0.0) AS trade_fees,
       e.equity AS end_equity,
       e.equity - coalesce(lag(e.equity) OVER (PARTITION BY d.symbol ORDER BY d.day), p.initial_balance) AS pnl
FROM day_ends d
JOIN equity e ON e.symbol = d.symbol AND e.open_time_ms = d.last_ms
JOIN positions p ON p.symbol = d.symbol
LEFT JOIN closed c ON c.symbol = d.symbol AND c.day = d.day;
