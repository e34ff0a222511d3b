-- The one place that says who hears of a change: one delivery row per
-- enabled endpoint subscribed to p_type (or to '*'), its body
-- {"type", "timestamp", "data"} fixed now, in the change's transaction.
-- The callers insert these rows into webhook_deliveries: eventd_enqueue_webhook
-- (events, from eventd.storage.webhooks), eventd_enqueue_webhooks (a
-- registration's change, from eventd_enqueue_email) and eventd_register_run.
--
-- SQL, so that it is inlined into its caller's statement: the body is built
-- only for the endpoints found, nothing at all when there are none.

CREATE OR REPLACE FUNCTION eventd_webhook_fanout(p_type text, p_data json)
RETURNS TABLE (endpoint_id uuid, type text, body text) LANGUAGE sql STABLE AS $$
    SELECT e.id, p_type,
           json_build_object('type', p_type, 'timestamp', eventd_json_time(now()),
                             'data', p_data)::text
    FROM webhook_endpoints e
    WHERE e.enabled AND e.types && ARRAY[p_type, '*']
$$;
