-- Schema version 6: symbols the live feed cannot stream, per daemon session. Bybit refused
-- their subscription (a delisted or unknown symbol): 'refused' while it is retried,
-- 'dropped' once the daemon gave up on it until restart. A symbol that streams again loses
-- its row, so the rows of the latest session are exactly its symbols in trouble.
CREATE TABLE feed_problems (
    run_id      INTEGER NOT NULL REFERENCES runs (run_id),
    symbol      TEXT    NOT NULL,
    state       TEXT    NOT NULL CHECK (state IN ('refused', 'dropped')),
    reason      TEXT    NOT NULL,
    refusals    INTEGER NOT NULL CHECK (refusals >= 1),
    attempts    INTEGER NOT NULL CHECK (attempts >= 1),
    since_ms    INTEGER NOT NULL,
    retry_at_ms INTEGER,
    PRIMARY KEY (run_id, symbol)
);
