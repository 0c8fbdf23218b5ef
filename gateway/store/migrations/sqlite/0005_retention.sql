-- The purge finds expired idempotency records by their expiry: one index range per batch.
CREATE INDEX idempotency_expiry ON idempotency_keys (expires_at);

-- Subscriptions deleted whose deliveries and attempts the purge has still to remove (in small
-- batches, long after their last attempt ended: never in the delete's own transaction).
CREATE TABLE deleted_subscriptions (
    id          TEXT PRIMARY KEY,
    deleted_at  REAL NOT NULL                  -- unix seconds
);
