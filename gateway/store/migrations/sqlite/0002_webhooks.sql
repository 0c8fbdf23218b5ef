-- Webhook subscriptions, one delivery per (event, subscription), and every attempt of each.

CREATE TABLE subscriptions (
    id                   TEXT PRIMARY KEY,
    tenant               TEXT NOT NULL,
    url                  TEXT NOT NULL,
    event_types          TEXT NOT NULL,          -- JSON list; "*" matches every type
    description          TEXT,
    enabled              INTEGER NOT NULL DEFAULT 1,
    disabled_reason      TEXT,
    secret               TEXT NOT NULL,
    previous_secret      TEXT,
    previous_expires_at  REAL,                   -- unix seconds
    failing_since        REAL,                   -- unix seconds of the first failure in a row
    seq                  INTEGER NOT NULL,       -- creation order, for cursor paging
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
    next_attempt_at  REAL,                       -- unix seconds; NULL once final
    lease_owner      TEXT,
    lease_until      REAL,
    last_error       TEXT,
    created_at       REAL NOT NULL,
    updated_at       REAL NOT NULL
);
CREATE INDEX deliveries_due ON deliveries (status, next_attempt_at);
CREATE INDEX deliveries_event ON deliveries (event_id);
CREATE INDEX deliveries_subscription ON deliveries (subscription_id, status);

CREATE TABLE attempts (
    delivery_id      TEXT NOT NULL,
    number           INTEGER NOT NULL,
    at               TEXT NOT NULL,
    status           INTEGER,                    -- HTTP status; NULL when none came back
    duration_ms      REAL NOT NULL,
    error            TEXT,
    response_excerpt TEXT,
    PRIMARY KEY (delivery_id, number)
);

-- Duplicate callbacks are recognised within a window, not forever: drop the unique index.
DROP INDEX events_dedupe;
ALTER TABLE events ADD COLUMN received_epoch REAL NOT NULL DEFAULT 0;
CREATE INDEX events_dedupe ON events (tenant, dedupe_key, received_epoch);
