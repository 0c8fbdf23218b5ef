-- A tenant's events newest first (listEvents without a type filter) are one index range that
-- stops at the page size: without it the tenant's every event was read and sorted, or, once
-- statistics existed, the whole table was walked backwards for a tenant with few events.
CREATE INDEX events_tenant_seq ON events (tenant, seq);
