-- Join queues: one ticket per (p_events[i], p_hashes[i]), the token's
-- SHA-256. Events are taken in id order, each queue row locked FOR NO KEY
-- UPDATE (joins of one event take turns; a registration deciding an
-- admission is not held up). A queue whose opening has come is opened first
-- (FOR UPDATE, eventd_queue_open), so nobody joining after the opening is
-- ranked before a pre-sale joiner. Before the opening a ticket gets no rank;
-- after it, the next ranks in arrival (array) order, as of clock_timestamp()
-- read under the lock, so ranks are given in time order across daemons.
--
-- One row per element, idx its 1-based position: outcome 'joined' with the
-- ticket, 'no_queue' (the event has no admission settings) or
-- 'event_not_found'. admitted_through and the ticket's admission are as of
-- the join.

CREATE OR REPLACE FUNCTION eventd_queue_join(p_events uuid[], p_hashes bytea[])
RETURNS TABLE (
    idx integer, outcome text, ticket_id uuid, rank bigint, opens_at timestamptz,
    admitted_through bigint, admitted_at timestamptz, expires_at timestamptz,
    token_minutes double precision, at timestamptz
)
LANGUAGE plpgsql SET enable_seqscan = off SET plan_cache_mode = auto AS $$
#variable_conflict use_column
DECLARE
    v_event uuid;
    v_queue admission_queues%ROWTYPE;
    v_minutes double precision;
    v_open boolean;
    v_at timestamptz;
    v_count bigint;
    v_through bigint;
BEGIN
    FOR v_event IN SELECT DISTINCT e FROM unnest(p_events) AS e ORDER BY e LOOP
        SELECT e.admission_token_minutes INTO v_minutes FROM events e WHERE e.id = v_event;
        IF NOT FOUND OR v_minutes IS NULL THEN
            RETURN QUERY
                SELECT x.i::integer,
                       CASE WHEN v_minutes IS NULL AND EXISTS (
                           SELECT 1 FROM events e WHERE e.id = v_event)
                       THEN 'no_queue' ELSE 'event_not_found' END,
                       NULL::uuid, NULL::bigint, NULL::timestamptz, NULL::bigint,
                       NULL::timestamptz, NULL::timestamptz, NULL::double precision,
                       NULL::timestamptz
                FROM unnest(p_events) WITH ORDINALITY AS x(e, i) WHERE x.e = v_event;
            CONTINUE;
        END IF;
        SELECT * INTO v_queue FROM admission_queues q WHERE q.event_id = v_event
        FOR NO KEY UPDATE;
        IF v_queue.opened_at IS NULL AND v_queue.opens_at <= clock_timestamp() THEN
            PERFORM 1 FROM admission_queues q WHERE q.event_id = v_event FOR UPDATE;
            PERFORM eventd_queue_open(v_event);
            SELECT * INTO v_queue FROM admission_queues q WHERE q.event_id = v_event;
        END IF;
        v_open := v_queue.opened_at IS NOT NULL;
        v_at := clock_timestamp();
        SELECT count(*) INTO v_count FROM unnest(p_events) AS e WHERE e = v_event;
        UPDATE admission_queues q SET
            joined = q.joined + v_count,
            ranked = q.ranked + CASE WHEN v_open THEN v_count ELSE 0 END
        WHERE q.event_id = v_event;
        v_through := CASE WHEN v_open
            THEN least(v_queue.ranked + v_count, eventd_queue_allowance(v_event, v_at))
            ELSE 0 END;
        RETURN QUERY
            WITH mine AS (
                SELECT x.i::integer AS i, x.h, row_number() OVER (ORDER BY x.i) AS n
                FROM unnest(p_events, p_hashes) WITH ORDINALITY AS x(e, h, i)
                WHERE x.e = v_event
            ), made AS (
                INSERT INTO queue_tickets AS t
                    (id, event_id, token_hash, seq, rank, joined_at, ranked_at)
                SELECT gen_random_uuid(), v_event, mine.h, v_queue.joined + mine.n,
                       CASE WHEN v_open THEN v_queue.ranked + mine.n END, v_at,
                       CASE WHEN v_open THEN v_at END
                FROM mine
                RETURNING t.id, t.seq, t.rank
            )
            SELECT mine.i, 'joined'::text, made.id, made.rank, v_queue.opens_at, v_through,
                   admitted.at, admitted.at + make_interval(secs => v_minutes * 60),
                   v_minutes, v_at
            FROM made JOIN mine ON made.seq = v_queue.joined + mine.n
            CROSS JOIN LATERAL (
                SELECT CASE WHEN made.rank <= v_through
                       THEN eventd_queue_admitted_at(v_event, made.rank, v_at) END AS at
            ) AS admitted;
    END LOOP;
END $$;
