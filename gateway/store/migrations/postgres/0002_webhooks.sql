-- Webhook subscriptions, one delivery per (event, subscription), and every attempt of each.

CREATE TABLE subscriptions (
    id                   TEXT PRIMARY KEY,
    tenant               TEXT NOT NULL,
    url                  TEXT NOT NULL,
    event_types          JSONB NOT NULL,         -- list; "*" matches every type
    description          TEXT,
    enabled              BOOLEAN NOT NULL DEFAULT TRUE,
    disabled_reason      TEXT,
    secret               TEXT NOT NULL,
    previous_secret      TEXT,
    previous_expires_at  DOUBLE PRECISION,       -- unix seconds
    failing_since        DOUBLE PRECISION,       -- unix seconds of the first failure in a row
    seq                  BIGINT GENERATED ALWAYS AS IDENTITY,  -- creation order, for paging
    created_at           TEXT NOT NULL,
    updated_at           TEXT NOT NULL
);
CREATE INDEX subscriptions_tenant ON subscriptions (tenant, seq);

CREATE TABLE deliveries (
    id               TEXT PRIMARY KEY,
    event_id         TEXT NOT NULL,
    subscription_id  TEXT NOT NULL,
    tenant           TEXT NOT NULL,
    status           TEXT NOT NULL,              -- pending, delivering, succeeded, failed
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  DOUBLE PRECISION,           -- unix seconds; NULL once final
    lease_owner      TEXT,
    lease_until      DOUBLE PRECISION,
    last_error       TEXT,
    created_at       DOUBLE PRECISION NOT NULL,
    updated_at       DOUBLE PRECISION NOT NULL
);
CREATE INDEX deliveries_due ON deliveries (status, next_attempt_at);
CREATE INDEX deliveries_event ON deliveries (event_id);
CREATE INDEX deliveries_subscription ON deliveries (subscription_id, status);
-- Claims look for expired leases too (a replica died): without this, a scan of every delivery.
CREATE INDEX deliveries_lease ON deliveries (lease_until) WHERE status = 'delivering';

CREATE TABLE attempts (
    delivery_id      TEXT NOT NULL,
    number           INTEGER NOT NULL,
    at               TEXT NOT NULL,
    status           INTEGER,                    -- HTTP status; NULL when none came back
    duration_ms      DOUBLE PRECISION NOT NULL,
    error            TEXT,
    response_excerpt TEXT,
    PRIMARY KEY (delivery_id, number)
);

-- Duplicate callbacks are recognised within a window, not forever: drop the unique index.
DROP INDEX events_dedupe;
ALTER TABLE events ADD COLUMN received_epoch DOUBLE PRECISION NOT NULL DEFAULT 0;
CREATE INDEX events_dedupe ON events (tenant, dedupe_key, received_epoch);
