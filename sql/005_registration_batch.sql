-- eventd schema, version 5: a batch of registrations answers in plain columns, and makes its ids.
--
-- eventd_registration_ops answered each operation with its counts as a
-- composite value and an array of promoted ids: the daemon decoded both for
-- every registration, the composite field by field by name. This answers the
-- counts' fields as columns of their own, in the order of EventCounts, and
-- NULL instead of an empty array when nobody was promoted.
--
-- A registration given no id gets one here (gen_random_uuid()): the daemon
-- no longer draws 16 random bytes per request while it waits for the
-- database anyway. The id is answered with the outcome.
--
-- eventd_registration_ops stays, for a daemon of the previous version that
-- shares the database while the next one starts.

CREATE FUNCTION eventd_registration_batch(
    p_kinds text[], p_ids uuid[], p_events uuid[], p_attendees uuid[], p_waitlist boolean[]
) RETURNS TABLE (
    idx integer, registration_id uuid, outcome text, created_at timestamptz, promoted uuid[],
    event_id uuid, max_attendees integer, confirmed_count integer, waitlist_count integer,
    version bigint, updated_at timestamptz, edited_version bigint
) LANGUAGE plpgsql AS $$
DECLARE
    r record;
    c eventd_event_counts;
BEGIN
    FOR i IN 1 .. coalesce(cardinality(p_kinds), 0) LOOP
        idx := i;
        registration_id := coalesce(p_ids[i], gen_random_uuid());
        IF p_kinds[i] = 'register' THEN
            SELECT * INTO r FROM eventd_register(
                registration_id, p_events[i], p_attendees[i], p_waitlist[i]);
            created_at := r.created_at;
            promoted := NULL;
        ELSE
            SELECT * INTO r FROM eventd_cancel(registration_id, p_events[i]);
            created_at := NULL;
            promoted := nullif(r.promoted, '{}');
        END IF;
        outcome := r.outcome;
        c := r.counts;
        event_id := c.event_id;
        max_attendees := c.max_attendees;
        confirmed_count := c.confirmed_count;
        waitlist_count := c.waitlist_count;
        version := c.version;
        updated_at := c.updated_at;
        edited_version := c.edited_version;
        RETURN NEXT;
    END LOOP;
END $$;
