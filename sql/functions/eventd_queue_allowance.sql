-- How many ranks an event's queue allows by p_at: base + floor(minutes since
-- `since` x rate), from the admission_rates row in force at p_at; 0 before
-- the opening. Exact: the interval's seconds are numeric, to the microsecond.

CREATE OR REPLACE FUNCTION eventd_queue_allowance(p_event uuid, p_at timestamptz) RETURNS bigint
LANGUAGE sql STABLE SET enable_seqscan = off AS $$
    SELECT coalesce((
        SELECT r.base + floor(extract(epoch FROM p_at - r.since) * r.rate_per_minute / 60)::bigint
        FROM admission_rates r
        WHERE r.event_id = p_event AND r.since <= p_at
        ORDER BY r.since DESC LIMIT 1
    ), 0)
$$;
