-- Promote waitlisted registrations of an event while spots are free, in
-- queue order (seq), each with its 'promoted' email. The caller has locked
-- the event row. Returns the promoted registration ids ('{}' for none).

CREATE OR REPLACE FUNCTION eventd_promote(p_event uuid) RETURNS uuid[]
LANGUAGE plpgsql SET enable_seqscan = off SET plan_cache_mode = auto AS $$
DECLARE
    free integer;
    promoted uuid[];
BEGIN
    SELECT max_attendees - confirmed_count INTO free FROM events WHERE id = p_event;
    IF free IS NULL OR free <= 0 THEN
        RETURN '{}';
    END IF;
    WITH next AS (
        SELECT id FROM registrations
        WHERE event_id = p_event AND status = 'waitlisted'
        ORDER BY seq LIMIT free FOR UPDATE
    ), moved AS (
        UPDATE registrations r SET status = 'confirmed', confirmed_at = now()
        FROM next WHERE r.id = next.id
        RETURNING r.id
    )
    SELECT coalesce(array_agg(id), '{}') INTO promoted FROM moved;
    PERFORM eventd_enqueue_email('promoted', id) FROM unnest(promoted) AS id;
    IF cardinality(promoted) > 0 THEN
        UPDATE events SET
            confirmed_count = confirmed_count + cardinality(promoted),
            waitlist_count = waitlist_count - cardinality(promoted)
        WHERE id = p_event;
    END IF;
    RETURN promoted;
END $$;
