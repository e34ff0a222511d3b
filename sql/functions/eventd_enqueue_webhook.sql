-- Queue the deliveries of a change that is not a registration's (an event
-- created, updated or deleted: eventd.storage.webhooks), with the resource
-- as the API shows it, rendered by the caller.

CREATE OR REPLACE FUNCTION eventd_enqueue_webhook(p_type text, p_data json) RETURNS void
LANGUAGE plpgsql SET enable_seqscan = off SET plan_cache_mode = auto AS $$
BEGIN
    INSERT INTO webhook_deliveries (endpoint_id, type, body)
    SELECT f.endpoint_id, f.type, f.body FROM eventd_webhook_fanout(p_type, p_data) f;
END $$;
