-- The queue ticker's second: open every queue that is due (any event), then
-- the state of each of p_events that has a queue, as of p_at (default: the
-- database's clock now). waiting = joined - admitted_through: the tickets
-- not admitted yet, ranked or not.

CREATE OR REPLACE FUNCTION eventd_queue_states(p_events uuid[], p_at timestamptz DEFAULT NULL)
RETURNS TABLE (
    event_id uuid, at timestamptz, opens_at timestamptz, opened boolean,
    admitted_through bigint, ranked bigint, joined bigint, waiting bigint
)
LANGUAGE plpgsql SET enable_seqscan = off SET plan_cache_mode = auto AS $$
#variable_conflict use_column
DECLARE
    v_at timestamptz := coalesce(p_at, clock_timestamp());
BEGIN
    PERFORM eventd_queue_open_due(v_at);
    RETURN QUERY
        SELECT s.event_id, v_at, s.opens_at, s.opened_at IS NOT NULL, s.through, s.ranked,
               s.joined, s.joined - s.through
        FROM (
            SELECT q.event_id, q.opens_at, q.opened_at, q.joined,
                   eventd_queue_ranked_by(q.event_id, v_at) AS ranked,
                   CASE WHEN q.opened_at IS NULL THEN 0
                        ELSE eventd_queue_admitted_through(q.event_id, v_at) END AS through
            FROM admission_queues q JOIN events e ON e.id = q.event_id
            WHERE q.event_id = ANY (p_events) AND e.admission_rate_per_minute IS NOT NULL
        ) AS s
        ORDER BY s.event_id;
END $$;
