-- Which tenant owns each resource created through the gateway, and which backend serves it.
CREATE TABLE resources (
    kind        TEXT NOT NULL,
    id          TEXT NOT NULL,
    tenant      TEXT NOT NULL,
    backend     TEXT NOT NULL,
    parent_id   TEXT,
    attributes  JSONB NOT NULL DEFAULT '{}',  -- what the backend keeps about it
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL,
    PRIMARY KEY (kind, id)
);
CREATE INDEX resources_parent ON resources (parent_id, kind);

-- Every event the gateway accepted; dedupe_key recognises a repeated upstream callback.
CREATE TABLE events (
    seq         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id          TEXT NOT NULL UNIQUE,
    tenant      TEXT NOT NULL,
    type        TEXT NOT NULL,
    backend     TEXT,
    occurred_at TEXT NOT NULL,
    data        JSON NOT NULL,                -- JSON, not JSONB: kept as received, key order too
    dedupe_key  TEXT,
    received_at TEXT NOT NULL
);
CREATE UNIQUE INDEX events_dedupe ON events (tenant, dedupe_key) WHERE dedupe_key IS NOT NULL;
CREATE INDEX events_tenant_type ON events (tenant, type, seq);

-- A caller's Idempotency-Key and what the first request with it answered.
CREATE TABLE idempotency_keys (
    tenant      TEXT NOT NULL,
    key         TEXT NOT NULL,
    operation   TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    state       TEXT NOT NULL,                -- running, done
    status      INTEGER,
    headers     JSONB,
    body        BYTEA,
    created_at  TEXT NOT NULL,
    expires_at  DOUBLE PRECISION NOT NULL,    -- unix seconds
    PRIMARY KEY (tenant, key)
);
