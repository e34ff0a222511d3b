-- The first batch entry point: registration operations applied in the order
-- given, one eventd_register or eventd_cancel call each, answering the counts
-- as a composite. The daemon calls eventd_registration_json now; this stays
-- for a daemon of an older version sharing the database during an upgrade.

CREATE OR REPLACE FUNCTION eventd_registration_ops(
    p_kinds text[], p_ids uuid[], p_events uuid[], p_attendees uuid[], p_waitlist boolean[]
) RETURNS TABLE (
    idx integer, outcome text, created_at timestamptz, promoted uuid[], counts eventd_event_counts
) LANGUAGE plpgsql AS $$
DECLARE
    r record;
BEGIN
    FOR i IN 1 .. coalesce(cardinality(p_kinds), 0) LOOP
        idx := i;
        IF p_kinds[i] = 'register' THEN
            SELECT * INTO r FROM eventd_register(p_ids[i], p_events[i], p_attendees[i], p_waitlist[i]);
            outcome := r.outcome; created_at := r.created_at; promoted := '{}'; counts := r.counts;
        ELSE
            SELECT * INTO r FROM eventd_cancel(p_ids[i], p_events[i]);
            outcome := r.outcome; created_at := NULL; promoted := r.promoted; counts := r.counts;
        END IF;
        RETURN NEXT;
    END LOOP;
END $$;
