-- Give an event's free seats (max_attendees - confirmed - held) to its
-- waitlist, in queue order (seq). With offer_minutes > 0 each one is
-- offered: status 'offered', expiresAt now + offer_minutes, an 'offered'
-- email with the deadline and the claim link; with 0, confirmed at once
-- with a 'promoted' email, as before offers existed — except under
-- confirmation 'email', where only the emailed link confirms: the seat is
-- offered for hold_minutes. The caller has locked
-- the event row and moves its version. Returns the registrations offered or
-- promoted ('{}' for none).

CREATE OR REPLACE FUNCTION eventd_fill_seats(p_event uuid) RETURNS uuid[]
LANGUAGE plpgsql SET enable_seqscan = off SET plan_cache_mode = auto AS $$
DECLARE
    ev events%ROWTYPE;
    free integer;
    filled uuid[];
    offering boolean;
BEGIN
    SELECT * INTO ev FROM events WHERE id = p_event;
    free := ev.max_attendees - ev.confirmed_count - ev.held_count;
    IF free IS NULL OR free <= 0 OR ev.waitlist_count = 0 THEN
        RETURN '{}';
    END IF;
    offering := ev.offer_minutes > 0 OR ev.confirmation = 'email';
    WITH next AS (
        SELECT id FROM registrations
        WHERE event_id = p_event AND status = 'waitlisted'
        ORDER BY seq LIMIT free FOR UPDATE
    ), moved AS (
        UPDATE registrations r SET
            status = CASE WHEN offering THEN 'offered' ELSE 'confirmed' END,
            confirmed_at = CASE WHEN offering THEN NULL ELSE now() END,
            expires_at = CASE WHEN offering
                              THEN now() + CASE WHEN ev.offer_minutes > 0 THEN ev.offer_minutes
                                             ELSE ev.hold_minutes END * interval '1 minute' END,
            updated_at = now()
        FROM next WHERE r.id = next.id
        RETURNING r.id, r.seq
    )
    SELECT coalesce(array_agg(id ORDER BY seq), '{}') INTO filled FROM moved;
    IF cardinality(filled) > 0 THEN
        UPDATE events SET
            confirmed_count = confirmed_count + CASE WHEN offering THEN 0
                                                     ELSE cardinality(filled) END,
            held_count = held_count + CASE WHEN offering THEN cardinality(filled) ELSE 0 END,
            waitlist_count = waitlist_count - cardinality(filled)
        WHERE id = p_event;
        PERFORM eventd_enqueue_emails(CASE WHEN offering THEN 'offered' ELSE 'promoted' END,
                                      filled);
    END IF;
    RETURN filled;
END $$;
