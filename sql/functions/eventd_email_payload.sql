-- An email's payload: the attendee, the event and the registration as they
-- stand at the moment the message is queued (an event may be gone by the
-- time the mailer sends it). eventd_enqueue_email and eventd_register_run
-- both build their payloads here, so every message has the same shape.
-- The event's timezone and calendar sequence are for its calendar part.
-- ``p_token`` is a manage token for the message's link; the mailer removes
-- it from the row once the message is sent. ``p_expires`` is the deadline
-- of a hold or an offer.

DROP FUNCTION IF EXISTS eventd_email_payload(attendees, events, uuid, text);

CREATE OR REPLACE FUNCTION eventd_email_payload(
    a attendees, e events, p_registration uuid, p_status text, p_token text,
    p_expires timestamptz
) RETURNS jsonb LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object(
        'attendee', jsonb_build_object('id', a.id, 'name', a.name, 'email', a.email),
        'event', jsonb_build_object('id', e.id, 'name', e.name, 'startsAt', e.starts_at,
                                    'endsAt', e.ends_at, 'location', e.location,
                                    'timezone', e.timezone,
                                    'sequence', e.calendar_sequence),
        'registration', jsonb_strip_nulls(jsonb_build_object(
            'id', p_registration, 'status', p_status, 'token', p_token,
            'expiresAt', p_expires)))
$$;
