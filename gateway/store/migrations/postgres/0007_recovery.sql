-- Recovery and queries (issue 16): a subscription's deliveries by status and time, events by
-- time and by the resource they concern, and bulk recoveries. Every read is one index range
-- that stops at the page size.

-- A subscription's deliveries newest first, of one status or of any: (created_at, id) is the
-- listing's order and its cursor. The first replaces (subscription_id, status), which the
-- retention's and the disable's reads still lead with.
DROP INDEX deliveries_subscription;
CREATE INDEX deliveries_subscription ON deliveries (subscription_id, status, created_at, id);
CREATE INDEX deliveries_subscription_time ON deliveries (subscription_id, created_at, id);
-- The delivery a recovery queued in a failed one's place: a failed delivery is queued again once.
ALTER TABLE deliveries ADD COLUMN requeued_as TEXT;

-- A time taken to a position in a tenant's events (the first received at or after it).
CREATE INDEX events_received ON events (tenant, received_epoch, seq);
-- Events by the product or user their data names (only those that name one are in the index).
CREATE INDEX events_product ON events (tenant, (data ->> 'productId'), seq)
    WHERE (data ->> 'productId') IS NOT NULL;
CREATE INDEX events_user ON events (tenant, (data ->> 'userId'), seq)
    WHERE (data ->> 'userId') IS NOT NULL;

-- Bulk recoveries: durable, so that whichever process starts next continues an unfinished one;
-- one process at a time works on each (its lease).
CREATE TABLE recoveries (
    id               TEXT PRIMARY KEY,
    tenant           TEXT NOT NULL,
    subscription_id  TEXT NOT NULL,
    status           TEXT NOT NULL,              -- running, done, failed
    since            DOUBLE PRECISION NOT NULL,  -- unix seconds: deliveries created from here
    until            DOUBLE PRECISION NOT NULL,  -- to before here
    requeued         INTEGER NOT NULL DEFAULT 0,
    total            INTEGER,                    -- counted by the first batch
    reason           TEXT,                       -- why it failed
    after_at         DOUBLE PRECISION,           -- the last delivery handled: (created_at, id)
    after_id         TEXT,
    lease_owner      TEXT,
    lease_until      DOUBLE PRECISION,
    created_at       DOUBLE PRECISION NOT NULL,
    finished_at      DOUBLE PRECISION
);
CREATE INDEX recoveries_running ON recoveries (status, created_at);
CREATE INDEX recoveries_subscription ON recoveries (subscription_id, status);
