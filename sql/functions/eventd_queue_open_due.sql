-- Open every queue whose opening instant has come (by p_at). A queue being
-- opened (or joined) by another daemon is skipped: that one opens it. Each
-- daemon's queue ticker calls this every second, so a queue opens within a
-- second of its instant even when nobody joins then, and at once when a
-- daemon starts after it. Returns how many queues it opened.

CREATE OR REPLACE FUNCTION eventd_queue_open_due(p_at timestamptz) RETURNS integer
LANGUAGE plpgsql SET enable_seqscan = off SET plan_cache_mode = auto AS $$
DECLARE
    v_event uuid;
    v_opened integer := 0;
BEGIN
    FOR v_event IN
        SELECT q.event_id FROM admission_queues q JOIN events e ON e.id = q.event_id
        WHERE q.opened_at IS NULL AND q.opens_at <= p_at
          AND e.admission_rate_per_minute IS NOT NULL
        ORDER BY q.event_id
        FOR UPDATE OF q SKIP LOCKED
    LOOP
        PERFORM eventd_queue_open(v_event);
        v_opened := v_opened + 1;
    END LOOP;
    RETURN v_opened;
END $$;
