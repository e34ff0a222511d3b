-- Queue one message about one registration, as things stand now, in the
-- transaction of the change that causes it (the mailer sends, retries and
-- marks the email_outbox rows). Each message carries a manage link with a
-- token of its own: minted here, its hash added to the registration's.
--
-- PL/pgSQL, not SQL: its plan is prepared once per connection, not per call,
-- and kept (plan_cache_mode = auto) with sequential scans off, so it reads
-- by index however small the tables were when it was planned
-- (sql/README.md says why every writer's function carries these settings).

CREATE OR REPLACE FUNCTION eventd_enqueue_email(p_kind text, p_registration uuid) RETURNS void
LANGUAGE plpgsql SET enable_seqscan = off SET plan_cache_mode = auto AS $$
DECLARE
    token text := eventd_new_token();
BEGIN
    UPDATE registrations SET token_hashes = token_hashes || sha256(convert_to(token, 'UTF8'))
    WHERE id = p_registration;
    INSERT INTO email_outbox (kind, recipient, payload)
    SELECT p_kind, a.email, eventd_email_payload(a, e, r.id, r.status, token,
        CASE WHEN r.status IN ('held', 'offered') THEN r.expires_at END)
    FROM registrations r
    JOIN attendees a ON a.id = r.attendee_id
    JOIN events e ON e.id = r.event_id
    WHERE r.id = p_registration;
END $$;
