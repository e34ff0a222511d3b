-- eventd_enqueue_email for many registrations at once, in the order given:
-- the same rows (a token minted for each, its hash added to the
-- registration's; one email_outbox row each, built by eventd_email_payload;
-- the webhooks of eventd_enqueue_webhooks), in three statements instead of
-- three per registration. For the changes that move many registrations of
-- one event together: a mass expiry (10,000 holds: 'expired') and the
-- offers of the seats it frees.

CREATE OR REPLACE FUNCTION eventd_enqueue_emails(p_kind text, p_registrations uuid[])
RETURNS void
LANGUAGE plpgsql SET enable_seqscan = off SET plan_cache_mode = auto AS $$
BEGIN
    WITH minted AS (
        SELECT id, n, eventd_new_token() AS token
        FROM unnest(p_registrations) WITH ORDINALITY AS x (id, n)
    ), stamped AS (
        UPDATE registrations r
        SET token_hashes = r.token_hashes || sha256(convert_to(m.token, 'UTF8'))
        FROM minted m WHERE r.id = m.id
        RETURNING r.id, r.attendee_id, r.event_id, r.status, r.expires_at, m.token, m.n
    )
    INSERT INTO email_outbox (kind, recipient, payload)
    SELECT p_kind, a.email, eventd_email_payload(a, e, s.id, s.status, s.token,
        CASE WHEN s.status IN ('held', 'offered') THEN s.expires_at END)
    FROM stamped s
    JOIN attendees a ON a.id = s.attendee_id
    JOIN events e ON e.id = s.event_id
    ORDER BY s.n;
    IF EXISTS (SELECT 1 FROM webhook_endpoints WHERE enabled) THEN
        PERFORM eventd_enqueue_webhooks(p_kind, id)
        FROM unnest(p_registrations) WITH ORDINALITY AS x (id, n) ORDER BY n;
    END IF;
END $$;
