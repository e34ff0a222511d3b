-- Expire an event's due holds and offers (expires_at <= the clock, read
-- when the statement runs), queue an 'expired' email for each, and give the
-- freed seats to the waitlist (eventd_fill_seats). Outcomes: expired, or
-- unchanged when nothing was due (no version, no email); expired_holds and
-- expired_offers count what expired.
--
-- One guarded statement under the event's row lock: whichever daemon (or
-- start-up sweep) gets there first expires each due row once and offers
-- each freed seat once; the others find nothing due.

CREATE OR REPLACE FUNCTION eventd_expire_due(
    p_event uuid,
    OUT outcome text, OUT promoted uuid[], OUT counts eventd_event_counts,
    OUT next_expiry timestamptz, OUT expired_holds integer, OUT expired_offers integer
) LANGUAGE plpgsql SET enable_seqscan = off SET plan_cache_mode = auto AS $$
DECLARE
    gone uuid[];
BEGIN
    PERFORM 1 FROM events WHERE id = p_event FOR UPDATE;
    WITH due AS (
        SELECT r.id, r.seq, r.status FROM registrations r
        WHERE r.event_id = p_event AND r.status IN ('held', 'offered')
          AND r.expires_at <= clock_timestamp()
        FOR UPDATE
    ), gone_now AS (
        UPDATE registrations r SET status = 'expired', updated_at = now()
        FROM due WHERE r.id = due.id
        RETURNING due.id, due.seq, due.status
    )
    SELECT coalesce(array_agg(id ORDER BY seq), '{}'),
           count(*) FILTER (WHERE status = 'held'), count(*) FILTER (WHERE status = 'offered')
    INTO gone, expired_holds, expired_offers FROM gone_now;
    promoted := '{}';
    IF cardinality(gone) = 0 THEN
        outcome := 'unchanged';
        SELECT id, max_attendees, confirmed_count, waitlist_count, version, updated_at,
               edited_version, held_count
        INTO counts FROM events WHERE id = p_event;
        next_expiry := eventd_next_expiry(p_event);
        RETURN;
    END IF;
    PERFORM eventd_enqueue_emails('expired', gone);
    UPDATE events SET held_count = held_count - cardinality(gone) WHERE id = p_event;
    promoted := eventd_fill_seats(p_event);
    UPDATE events SET version = version + 1, updated_at = now() WHERE id = p_event
    RETURNING id, max_attendees, confirmed_count, waitlist_count, version, updated_at,
              edited_version, held_count
    INTO counts;
    next_expiry := eventd_next_expiry(p_event);
    outcome := 'expired';
END $$;
