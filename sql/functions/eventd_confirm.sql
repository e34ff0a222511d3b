-- Confirm a held or offered registration. Outcomes:
--   confirmed_hold, confirmed_offer  it was held / offered and is confirmed now;
--   already_confirmed                nothing changes (a confirm is idempotent);
--   hold_expired                     its expires_at has passed (by the clock,
--                                    even if no sweep has run yet): the due
--                                    holds of the event are expired now;
--   not_held                         it is waitlisted or cancelled;
--   not_found.
-- The event row is locked first, so a confirm and the expiry of the same
-- hold are one after the other: confirmed or expired, never both.

CREATE OR REPLACE FUNCTION eventd_confirm(
    p_id uuid, p_event uuid,
    OUT outcome text, OUT promoted uuid[], OUT counts eventd_event_counts,
    OUT next_expiry timestamptz, OUT expired_holds integer, OUT expired_offers integer
) LANGUAGE plpgsql SET enable_seqscan = off SET plan_cache_mode = auto AS $$
DECLARE
    reg registrations%ROWTYPE;
    swept record;
BEGIN
    PERFORM 1 FROM events WHERE id = p_event FOR UPDATE;
    SELECT * INTO reg FROM registrations WHERE id = p_id AND event_id = p_event FOR UPDATE;
    promoted := '{}';
    IF NOT FOUND OR reg.status NOT IN ('held', 'offered')
       OR reg.expires_at <= clock_timestamp() THEN
        outcome := CASE
            WHEN NOT FOUND THEN 'not_found'
            WHEN reg.status = 'confirmed' THEN 'already_confirmed'
            WHEN reg.status IN ('held', 'offered', 'expired') THEN 'hold_expired'
            ELSE 'not_held'
        END;
        IF FOUND AND reg.status IN ('held', 'offered') THEN
            SELECT * INTO swept FROM eventd_expire_due(p_event);
            promoted := swept.promoted;
            counts := swept.counts;
            next_expiry := swept.next_expiry;
            expired_holds := swept.expired_holds;
            expired_offers := swept.expired_offers;
            RETURN;
        END IF;
        SELECT id, max_attendees, confirmed_count, waitlist_count, version, updated_at,
               edited_version, held_count
        INTO counts FROM events WHERE id = p_event;
        next_expiry := eventd_next_expiry(p_event);
        RETURN;
    END IF;
    UPDATE registrations SET status = 'confirmed', confirmed_at = now(), updated_at = now()
    WHERE id = p_id;
    PERFORM eventd_enqueue_email('registration_confirmed', p_id);
    UPDATE events SET
        confirmed_count = confirmed_count + 1,
        held_count = held_count - 1,
        version = version + 1,
        updated_at = now()
    WHERE id = p_event
    RETURNING id, max_attendees, confirmed_count, waitlist_count, version, updated_at,
              edited_version, held_count
    INTO counts;
    next_expiry := eventd_next_expiry(p_event);
    outcome := CASE reg.status WHEN 'held' THEN 'confirmed_hold' ELSE 'confirmed_offer' END;
END $$;
