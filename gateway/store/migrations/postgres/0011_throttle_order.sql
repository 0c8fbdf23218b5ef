-- Throttling (issue 18): a subscription's most deliveries a second (NULL: unlimited) and its token
-- bucket (tokens left at tokens_at, unix seconds), taken by the claims of every process; when a
-- subscriber last asked to be left alone (429 or 503 with Retry-After) and until when; and the
-- moment before which no delivery of it is claimed (the later of that and the bucket's next
-- token). Only held subscriptions are in the index the claim reads.
ALTER TABLE subscriptions ADD COLUMN max_per_second DOUBLE PRECISION;
ALTER TABLE subscriptions ADD COLUMN tokens DOUBLE PRECISION;
ALTER TABLE subscriptions ADD COLUMN tokens_at DOUBLE PRECISION;
ALTER TABLE subscriptions ADD COLUMN throttled_until DOUBLE PRECISION;
ALTER TABLE subscriptions ADD COLUMN held_until DOUBLE PRECISION;
CREATE INDEX subscriptions_held ON subscriptions (held_until) WHERE held_until IS NOT NULL;

-- Ordered delivery per key (issue 18): a subscription ordering its deliveries by the resource an
-- event is about ('resource'; NULL: unordered), and on each delivery of such an event its key and
-- the event's position (seq), written when the delivery is recorded. The key is cleared once the
-- delivery is final, so the index holds only what the claim must check: the undelivered.
ALTER TABLE subscriptions ADD COLUMN order_by TEXT;
ALTER TABLE deliveries ADD COLUMN order_key TEXT;
ALTER TABLE deliveries ADD COLUMN order_seq BIGINT;
CREATE INDEX deliveries_order ON deliveries (subscription_id, order_key, order_seq)
    WHERE order_key IS NOT NULL;
