-- Deliveries are claimed tenant by tenant (each tenant's oldest due first, a share each): one
-- index range per tenant, whatever the other tenants' backlogs.
CREATE INDEX deliveries_tenant_due ON deliveries (tenant, status, next_attempt_at);
