-- Deliveries are claimed tenant by tenant (each tenant's oldest due first, a share each): the due
-- index leads with the tenant after the status, so that each tenant's due deliveries are one
-- index range whatever the other tenants' backlogs (the same number of indexes to maintain).
DROP INDEX deliveries_due;
CREATE INDEX deliveries_due ON deliveries (status, tenant, next_attempt_at);
