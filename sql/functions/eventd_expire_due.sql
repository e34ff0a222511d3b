-- Expire an event's due holds and offers (expires_at <= the clock, read
-- when the statement runs), queue an 'expired' email for each, and give the
-- freed seats to the waitlist (eventd_fill_seats). Outcomes: expired, or
-- unchanged when nothing was due (no version, no email).
--
-- One guarded statement under the event's row lock: whichever daemon (or
-- start-up sweep) gets there first expires each due row once and offers
-- each freed seat once; the others find nothing due.

CREATE OR REPLACE FUNCTION eventd_expire_due(
    p_event uuid,
    OUT outcome text, OUT promoted uuid[], OUT counts eventd_event_counts,
    OUT next_expiry timestamptz
) LANGUAGE plpgsql SET enable_seqscan = off SET plan_cache_mode = auto AS $$
DECLARE
    gone uuid[];
BEGIN
    PERFORM 1 FROM events WHERE id = p_event FOR UPDATE;
    WITH due AS (
        UPDATE registrations SET status = 'expired', updated_at = now()
        WHERE event_id = p_event AND status IN ('held', 'offered')
          AND expires_at <= clock_timestamp()
        RETURNING id, seq
    )
    SELECT coalesce(array_agg(id ORDER BY seq), '{}') INTO gone FROM due;
    promoted := '{}';
    IF cardinality(gone) = 0 THEN
        outcome := 'unchanged';
        SELECT id, max_attendees, confirmed_count, waitlist_count, version, updated_at,
               edited_version, held_count
        INTO counts FROM events WHERE id = p_event;
        next_expiry := eventd_next_expiry(p_event);
        RETURN;
    END IF;
    PERFORM eventd_enqueue_email('expired', id) FROM unnest(gone) AS id;
    UPDATE events SET held_count = held_count - cardinality(gone) WHERE id = p_event;
    promoted := eventd_fill_seats(p_event);
    UPDATE events SET version = version + 1, updated_at = now() WHERE id = p_event
    RETURNING id, max_attendees, confirmed_count, waitlist_count, version, updated_at,
              edited_version, held_count
    INTO counts;
    next_expiry := eventd_next_expiry(p_event);
    outcome := 'expired';
END $$;
