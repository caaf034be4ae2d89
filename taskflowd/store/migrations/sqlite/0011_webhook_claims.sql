-- Webhook claims read each endpoint's oldest due deliveries from its own range of this
-- index: an endpoint at its in-flight bound, or disabled, costs one look-up, never a scan
-- of its backlog (which every claim paid while that backlog was due).
CREATE INDEX webhook_deliveries_endpoint_due ON webhook_deliveries (endpoint_id, next_attempt_at)
    WHERE status IN ('PENDING', 'SENDING');
