-- Remove an attendee and every registration they hold, freeing seats for
-- the waitlists (eventd_cancel: offers or promotions); then their
-- registrations' history goes with them. Returns one row per event whose
-- counts changed, with its next pending expiry (or one row with
-- existed = false when there is no such attendee).
-- Locks the events first (in id order), then the attendee: the order
-- eventd_register takes them in, so the two never deadlock.

DROP FUNCTION IF EXISTS eventd_delete_attendee(uuid);

CREATE OR REPLACE FUNCTION eventd_delete_attendee(p_attendee uuid)
RETURNS TABLE (
    existed boolean, promoted uuid[], counts eventd_event_counts, next_expiry timestamptz
)
LANGUAGE plpgsql SET enable_seqscan = off SET plan_cache_mode = auto AS $$
DECLARE
    reg record;
    c record;
BEGIN
    PERFORM 1 FROM events WHERE id IN (
        SELECT event_id FROM registrations WHERE attendee_id = p_attendee
    ) ORDER BY id FOR UPDATE;
    PERFORM 1 FROM attendees WHERE id = p_attendee FOR UPDATE;
    IF NOT FOUND THEN
        existed := false;
        RETURN NEXT;
        RETURN;
    END IF;
    existed := true;
    -- Lock the events in id order, the same order every batch uses.
    FOR reg IN
        SELECT r.id, r.event_id FROM registrations r
        WHERE r.attendee_id = p_attendee
          AND r.status IN ('held', 'offered', 'confirmed', 'waitlisted')
        ORDER BY r.event_id
    LOOP
        SELECT * INTO c FROM eventd_cancel(reg.id, reg.event_id);
        promoted := c.promoted;
        counts := c.counts;
        next_expiry := c.next_expiry;
        RETURN NEXT;
    END LOOP;
    DELETE FROM registrations WHERE attendee_id = p_attendee;
    DELETE FROM attendees WHERE id = p_attendee;
END $$;
