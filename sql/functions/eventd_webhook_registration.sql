-- The deliveries of one change to a registration (eventd_webhook_fanout),
-- with the registration as GET /registrations/{id} shows it
-- (eventd.model.Registration.to_json): never a token, never an email.
-- p_position is the waitlist position, shown only while waitlisted.

CREATE OR REPLACE FUNCTION eventd_webhook_registration(
    p_type text, p_status text, p_id uuid, p_event uuid, p_attendee uuid,
    p_position bigint, p_created timestamptz, p_expires timestamptz DEFAULT NULL,
    p_updated timestamptz DEFAULT NULL, p_checked_in timestamptz DEFAULT NULL
) RETURNS TABLE (endpoint_id uuid, type text, body text) LANGUAGE sql STABLE AS $$
    SELECT * FROM eventd_webhook_fanout(p_type, json_build_object(
        'id', p_id, 'eventId', p_event, 'attendeeId', p_attendee, 'status', p_status,
        'waitlistPosition', CASE WHEN p_status = 'waitlisted' THEN p_position END,
        'expiresAt', CASE WHEN p_status IN ('held', 'offered') THEN eventd_json_time(p_expires) END,
        'checkedInAt', eventd_json_time(p_checked_in),
        'createdAt', eventd_json_time(p_created),
        'updatedAt', eventd_json_time(coalesce(p_updated, p_created))))
$$;
