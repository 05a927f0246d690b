-- Schema version 5: a win rate with no closed trades is 0.0 in v_model_performance, as it
-- is everywhere else in Shadow (the env's info, backtest metrics, shadow status; see
-- env.portfolio.win_rate for why). Version 2's view said NULL. Only the view changes: no
-- table is touched, no row is rewritten.
DROP VIEW v_model_performance;

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
       CASE WHEN o.trades > 0 THEN 1.0 * o.wins / o.trades ELSE 0.0 END AS win_rate,
       coalesce(o.net_pnl, 0.0) AS net_pnl,
       coalesce(o.fees, 0.0) AS fees,
       CASE WHEN o.trades > 0 THEN o.net_pnl / o.trades END AS avg_net_pnl,
       m.avg_latency_ms,
       datetime(m.first_ms / 1000, 'unixepoch') AS first_candle,
       datetime(m.last_ms / 1000, 'unixepoch') AS last_candle
FROM made m
LEFT JOIN opened o ON o.strategy IS m.strategy AND o.model_version IS m.model_version;
