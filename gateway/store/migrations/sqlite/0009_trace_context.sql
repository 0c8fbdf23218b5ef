-- The trace context of the request that started a backend job (a resource's last write) and of
-- the span that published an event, so that a callback received later (another process, after
-- a restart) and the event's deliveries join or link to that trace. Written only with
-- [telemetry] configured; rows older than the events' retention are purged with them.
CREATE TABLE trace_contexts (
    subject      TEXT PRIMARY KEY,   -- "resource:<kind>:<id>" or "event:<id>"
    context      TEXT NOT NULL,      -- JSON: W3C traceparent, tracestate, links (gateway.telemetry)
    saved_epoch  REAL NOT NULL       -- unix seconds
);
CREATE INDEX trace_contexts_saved ON trace_contexts (saved_epoch);
