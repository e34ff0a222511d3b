-- Open an event's queue: rank everyone who joined before the opening, in a
-- uniformly random order, in one statement. The order is gen_random_uuid()'s:
-- 122 bits from pg_strong_random (the OpenSSL CSPRNG) per ticket, so every
-- order is equally likely (two equal draws among a million tickets: about
-- 1e-25). The ranks are given as of the opening instant (opens_at), which
-- also starts the first admission_rates row, whenever this runs.
--
-- The caller holds the queue row FOR UPDATE and has checked that the queue
-- is due and not open: this runs once per queue. Returns how many it ranked.

CREATE OR REPLACE FUNCTION eventd_queue_open(p_event uuid) RETURNS bigint
LANGUAGE plpgsql SET enable_seqscan = off SET plan_cache_mode = auto AS $$
DECLARE
    v_opens timestamptz;
    v_rate integer;
    v_ranked bigint;
BEGIN
    SELECT q.opens_at, e.admission_rate_per_minute INTO v_opens, v_rate
    FROM admission_queues q JOIN events e ON e.id = q.event_id
    WHERE q.event_id = p_event AND q.opened_at IS NULL;
    IF v_rate IS NULL THEN
        RETURN 0;  -- open already, or no admission settings now: nothing to open
    END IF;
    UPDATE queue_tickets t SET rank = drawn.rank, ranked_at = v_opens
    FROM (
        SELECT id, row_number() OVER (ORDER BY gen_random_uuid()) AS rank
        FROM queue_tickets WHERE event_id = p_event AND rank IS NULL
    ) AS drawn
    WHERE t.id = drawn.id;
    GET DIAGNOSTICS v_ranked = ROW_COUNT;
    UPDATE admission_queues SET opened_at = v_opens, ranked = v_ranked
    WHERE event_id = p_event;
    INSERT INTO admission_rates (event_id, since, base, rate_per_minute)
    VALUES (p_event, v_opens, 0, v_rate);
    RETURN v_ranked;
END $$;
