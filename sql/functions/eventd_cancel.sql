-- Cancel one registration of an event. Outcomes: cancelled, unchanged (it
-- was cancelled or expired already: nothing changes), not_found.
-- The event row is locked first, as every registration change locks it. The
-- row is kept as history (status 'cancelled'); its 'registration_cancelled'
-- email is queued; a freed seat goes to the waitlist (eventd_fill_seats),
-- and the event's version moves once for the whole change. counts is the
-- event after it, next_expiry its next pending expiry.

DROP FUNCTION IF EXISTS eventd_cancel(uuid, uuid);

CREATE OR REPLACE FUNCTION eventd_cancel(
    p_id uuid, p_event uuid,
    OUT outcome text, OUT promoted uuid[], OUT counts eventd_event_counts,
    OUT next_expiry timestamptz
) LANGUAGE plpgsql SET enable_seqscan = off SET plan_cache_mode = auto AS $$
DECLARE
    old_status text;
BEGIN
    PERFORM 1 FROM events WHERE id = p_event FOR UPDATE;
    SELECT status INTO old_status FROM registrations
    WHERE id = p_id AND event_id = p_event FOR UPDATE;
    promoted := '{}';
    IF NOT FOUND OR old_status IN ('cancelled', 'expired') THEN
        outcome := CASE WHEN FOUND THEN 'unchanged' ELSE 'not_found' END;
        SELECT id, max_attendees, confirmed_count, waitlist_count, version, updated_at,
               edited_version, held_count
        INTO counts FROM events WHERE id = p_event;
        next_expiry := eventd_next_expiry(p_event);
        RETURN;
    END IF;
    -- Queued first: the message says what was cancelled (a seat has a calendar
    -- entry to cancel; a place on the waitlist had none).
    PERFORM eventd_enqueue_email('registration_cancelled', p_id);
    UPDATE registrations SET status = 'cancelled', updated_at = now() WHERE id = p_id;
    UPDATE events SET
        confirmed_count = confirmed_count - (old_status = 'confirmed')::int,
        held_count = held_count - (old_status IN ('held', 'offered'))::int,
        waitlist_count = waitlist_count - (old_status = 'waitlisted')::int
    WHERE id = p_event;
    promoted := eventd_fill_seats(p_event);
    UPDATE events SET version = version + 1, updated_at = now() WHERE id = p_event
    RETURNING id, max_attendees, confirmed_count, waitlist_count, version, updated_at,
              edited_version, held_count
    INTO counts;
    next_expiry := eventd_next_expiry(p_event);
    outcome := 'cancelled';
END $$;
