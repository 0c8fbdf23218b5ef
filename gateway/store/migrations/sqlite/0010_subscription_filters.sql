-- A subscription's filter: a JMESPath expression on the event document (gateway.webhooks.filters),
-- NULL for every event of its types. Evaluated when an event's deliveries are recorded; the
-- subscriptions without one are queued by one INSERT ... SELECT as before.
ALTER TABLE subscriptions ADD COLUMN filter TEXT;
