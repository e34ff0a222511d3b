-- Queue the reminder of every confirmed registration of an event that was
-- confirmed by the reminder moment (starts_at - p_before) and not reminded
-- yet, if the event has not begun. Marking and queueing are one statement:
-- each registration is reminded once, however many daemons fire at the same
-- moment. Returns how many were queued.
--
-- SQL, not PL/pgSQL: planned at each call anyway, so only sequential scans
-- are turned off (sql/README.md).

CREATE OR REPLACE FUNCTION eventd_send_reminders(p_event uuid, p_before interval) RETURNS integer
LANGUAGE sql SET enable_seqscan = off AS $$
    WITH due AS (
        UPDATE registrations r SET reminded_at = now()
        FROM events e
        WHERE e.id = p_event AND r.event_id = e.id AND r.status = 'confirmed'
          AND r.reminded_at IS NULL AND r.confirmed_at <= e.starts_at - p_before
          AND now() < e.starts_at
        RETURNING r.id
    ), queued AS (
        SELECT eventd_enqueue_email('reminder', id) FROM due
    )
    SELECT count(*)::integer FROM queued
$$;
