-- Per queued event not yet ended, as of p_at: tickets joined, ranked, admitted (the
-- frontier now), admissions used, and admissions expired unused. Admission
-- order is rank order and every token lasts tokenMinutes, so the tickets
-- expired by now are those admitted by now - tokenMinutes.

CREATE OR REPLACE FUNCTION eventd_queue_metrics(p_at timestamptz DEFAULT clock_timestamp())
RETURNS TABLE (
    event_id uuid, joined bigint, ranked bigint, admitted bigint, used bigint, expired bigint
)
LANGUAGE plpgsql STABLE SET enable_seqscan = off SET plan_cache_mode = auto AS $$
#variable_conflict use_column
DECLARE
    v_at timestamptz := p_at;
BEGIN
    RETURN QUERY
        SELECT s.event_id, s.joined, s.ranked, s.admitted, s.used,
               s.lapsed - (SELECT count(*) FROM queue_tickets t
                           WHERE t.event_id = s.event_id AND t.used_at IS NOT NULL
                             AND t.rank <= s.lapsed)
        FROM (
            SELECT q.event_id, q.joined, q.ranked,
                   eventd_queue_admitted_through(q.event_id, v_at) AS admitted,
                   eventd_queue_admitted_through(
                       q.event_id,
                       v_at - make_interval(secs => e.admission_token_minutes * 60)) AS lapsed,
                   (SELECT count(*) FROM queue_tickets t
                    WHERE t.event_id = q.event_id AND t.used_at IS NOT NULL) AS used
            FROM admission_queues q JOIN events e ON e.id = q.event_id
            WHERE e.admission_rate_per_minute IS NOT NULL AND e.ends_at > v_at
        ) AS s
        ORDER BY s.event_id;
END $$;
