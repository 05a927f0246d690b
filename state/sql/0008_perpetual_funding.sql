-- Schema version 8: perpetual funding (env/funding.py). An open linear position pays or
-- receives funding at every funding time; the account (positions) keeps the total and the
-- open position's share, each trade its own, each equity row the running total. Funding
-- payments are account events of their own (one per decision at most, written in the
-- decision's transaction), not fills and not trades; the rates the daemon applied are market
-- data beside the candles, so a backtest or `shadow verify` over the ledger charges them too.
-- Rows written before version 8 paid no funding: the new columns (positions.funding_paid,
-- positions.position_funding, trades.funding, equity.funding_paid, all REAL NOT NULL
-- DEFAULT 0) are added by the step's column list in state/migrations.py, before this
-- script, only where missing, so the step can be applied again safely.

-- The rate the exchange settled at each funding time the daemon saw: 'ticker' when the
-- websocket announced it for that time and stayed connected until then, 'history' when it
-- came from the exchange's funding history (a start-up, a missed announcement). The first
-- stored rate of a time wins, as with candles.
CREATE TABLE IF NOT EXISTS funding_rates (
    symbol   TEXT    NOT NULL,
    time_ms  INTEGER NOT NULL,
    rate     REAL    NOT NULL,
    source   TEXT    NOT NULL CHECK (source IN ('ticker', 'history')),
    PRIMARY KEY (symbol, time_ms)
) WITHOUT ROWID;

-- What an open position paid (amount > 0) or received (amount < 0) at a funding time:
-- side x qty x price x rate, price being the close of the candle that ends at time_ms.
CREATE TABLE IF NOT EXISTS funding (
    funding_id   INTEGER PRIMARY KEY,
    decision_id  INTEGER NOT NULL UNIQUE REFERENCES decisions (decision_id),
    symbol       TEXT    NOT NULL,
    time_ms      INTEGER NOT NULL,
    rate         REAL    NOT NULL,
    price        REAL    NOT NULL,
    side         INTEGER NOT NULL CHECK (side IN (-1, 1)),
    qty          REAL    NOT NULL,
    amount       REAL    NOT NULL
);
CREATE INDEX IF NOT EXISTS funding_time ON funding (symbol, time_ms);

DROP VIEW v_trades;
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
       t.funding,
       t.net_pnl,
       100.0 * t.net_pnl / (t.qty * t.entry_price) AS return_pct,
       d.strategy,
       d.model_version,
       t.entry_time_ms,
       t.exit_time_ms
FROM trades t
LEFT JOIN decisions d ON d.decision_id = t.entry_decision_id;

DROP VIEW v_equity_curve;
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
       e.funding_paid,
       e.drawdown,
       e.open_time_ms
FROM equity e;

DROP VIEW v_daily_pnl;
CREATE VIEW v_daily_pnl AS
WITH day_ends AS (
    SELECT symbol, date(open_time_ms / 1000, 'unixepoch') AS day, max(open_time_ms) AS last_ms, count(*) AS decisions
    FROM equity GROUP BY symbol, day
), closed AS (
    SELECT symbol, date(exit_time_ms / 1000, 'unixepoch') AS day, count(*) AS trades,
           sum(net_pnl > 0) AS wins, sum(net_pnl) AS realized_net_pnl, sum(fees) AS fees
    FROM trades GROUP BY symbol, day
), settled AS (
    SELECT symbol, date(time_ms / 1000, 'unixepoch') AS day, sum(amount) AS funding
    FROM funding GROUP BY symbol, day
)
SELECT d.symbol,
       d.day,
       d.decisions,
       coalesce(c.trades, 0) AS trades,
       coalesce(c.wins, 0) AS wins,
       coalesce(c.realized_net_pnl, 0.0) AS realized_net_pnl,
       coalesce(c.fees, 0.0) AS trade_fees,
       coalesce(s.funding, 0.0) AS funding,
       e.equity AS end_equity,
       e.equity - coalesce(lag(e.equity) OVER (PARTITION BY d.symbol ORDER BY d.day), p.initial_balance) AS pnl
FROM day_ends d
JOIN equity e ON e.symbol = d.symbol AND e.open_time_ms = d.last_ms
JOIN positions p ON p.symbol = d.symbol
LEFT JOIN closed c ON c.symbol = d.symbol AND c.day = d.day
LEFT JOIN settled s ON s.symbol = d.symbol AND s.day = d.day;

-- Trades are credited to the model whose decision opened them; so is their funding.
DROP VIEW v_model_performance;
CREATE VIEW v_model_performance AS
WITH made AS (
    SELECT strategy, model_version, count(*) AS decisions, avg(latency_ms) AS avg_latency_ms,
           min(open_time_ms) AS first_ms, max(open_time_ms) AS last_ms
    FROM decisions GROUP BY strategy, model_version
), opened AS (
    SELECT d.strategy, d.model_version, count(*) AS trades, sum(t.net_pnl > 0) AS wins,
           sum(t.net_pnl) AS net_pnl, sum(t.fees) AS fees, sum(t.funding) AS funding
    FROM trades t JOIN decisions d ON d.decision_id = t.entry_decision_id
    GROUP BY d.strategy, d.model_version
)
SELECT m.strategy,
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
LEFT JOIN opened o ON o.strategy IS m.strategy AND o.model_version IS m.model_version;

DROP VIEW IF EXISTS v_funding;
CREATE VIEW v_funding AS
SELECT f.funding_id,
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
