-- Cancel one registration of an event. Outcomes: cancelled, not_found.
-- The event row is locked first, as eventd_register locks it; the
-- registration's 'registration_cancelled' email is queued while the row still
-- exists; a freed spot goes to the waitlist (eventd_promote), and the event's
-- version moves once for the whole change. counts is the event after it.

CREATE OR REPLACE FUNCTION eventd_cancel(
    p_id uuid, p_event uuid,
    OUT outcome text, OUT promoted uuid[], OUT counts eventd_event_counts
) LANGUAGE plpgsql SET enable_seqscan = off SET plan_cache_mode = auto AS $$
DECLARE
    old_status text;
BEGIN
    PERFORM 1 FROM events WHERE id = p_event FOR UPDATE;
    IF EXISTS (SELECT 1 FROM registrations WHERE id = p_id AND event_id = p_event) THEN
        PERFORM eventd_enqueue_email('registration_cancelled', p_id);
    END IF;
    DELETE FROM registrations WHERE id = p_id AND event_id = p_event
    RETURNING status INTO old_status;
    IF NOT FOUND THEN
        outcome := 'not_found';
        promoted := '{}';
        SELECT id, max_attendees, confirmed_count, waitlist_count, version, updated_at,
               edited_version
        INTO counts FROM events WHERE id = p_event;
        RETURN;
    END IF;
    UPDATE events SET
        confirmed_count = confirmed_count - (old_status = 'confirmed')::int,
        waitlist_count = waitlist_count - (old_status = 'waitlisted')::int
    WHERE id = p_event;
    promoted := eventd_promote(p_event);
    UPDATE events SET version = version + 1, updated_at = now() WHERE id = p_event
    RETURNING id, max_attendees, confirmed_count, waitlist_count, version, updated_at,
               edited_version
    INTO counts;
    outcome := 'cancelled';
END $$;
