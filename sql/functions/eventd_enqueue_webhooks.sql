-- Queue the webhooks of a change to one registration, in the change's
-- transaction: eventd_enqueue_email calls it with its own kind of message,
-- so every change that is emailed is also announced, from one place.
--
-- The email's kind says the type: confirmed (or promoted from the
-- waitlist), waitlisted, cancelled; 'checked_in' for a check-in, which no
-- email announces. A reminder, and the emails about an event's change or
-- deletion, are not a registration's change (event.updated, event.deleted
-- announce those). Any other kind names the state the registration has
-- just entered (held, offered, expired): its status says the type.
-- A cancelled registration is shown cancelled, whether or not its row has
-- been changed yet.

CREATE OR REPLACE FUNCTION eventd_enqueue_webhooks(p_kind text, p_registration uuid)
RETURNS void
LANGUAGE plpgsql SET enable_seqscan = off SET plan_cache_mode = auto AS $$
DECLARE
    r registrations%ROWTYPE;
    state text;
BEGIN
    IF p_kind IN ('reminder', 'event_changed', 'event_cancelled')
       OR NOT EXISTS (SELECT 1 FROM webhook_endpoints WHERE enabled) THEN
        RETURN;
    END IF;
    SELECT * INTO r FROM registrations WHERE id = p_registration;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    state := CASE p_kind
        WHEN 'registration_confirmed' THEN 'confirmed'
        WHEN 'promoted' THEN 'confirmed'
        WHEN 'registration_cancelled' THEN 'cancelled'
        WHEN 'checked_in' THEN 'checked_in'
        ELSE r.status
    END;
    INSERT INTO webhook_deliveries (endpoint_id, type, body)
    SELECT w.endpoint_id, w.type, w.body FROM eventd_webhook_registration(
        'registration.' || state,
        CASE WHEN state = 'cancelled' THEN state ELSE r.status END,
        r.id, r.event_id, r.attendee_id,
        CASE WHEN r.status = 'waitlisted' THEN (SELECT count(*) FROM registrations q
            WHERE q.event_id = r.event_id AND q.status = 'waitlisted' AND q.seq <= r.seq) END,
        r.created_at, r.expires_at, r.updated_at, r.checked_in_at) w;
END $$;
