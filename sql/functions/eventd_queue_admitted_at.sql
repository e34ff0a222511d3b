-- The instant rank p_rank (ranked at p_ranked_at) is admitted: the first
-- microsecond at which the allowance reaches it, or its ranking if later.
-- The allowance reaches r in the admission_rates row with the last base
-- below r, at since + (r - base) / rate minutes, rounded up to the
-- microsecond (so eventd_queue_allowance agrees at that instant and not one
-- microsecond before). NULL when the queue has not opened or p_rank is NULL.
-- It may lie in the future: not admitted yet.

CREATE OR REPLACE FUNCTION eventd_queue_admitted_at(
    p_event uuid, p_rank bigint, p_ranked_at timestamptz
) RETURNS timestamptz
LANGUAGE sql STABLE SET enable_seqscan = off AS $$
    SELECT greatest(
        p_ranked_at,
        r.since + ceil((p_rank - r.base) * 60000000.0 / r.rate_per_minute)::bigint
            * interval '1 microsecond')
    FROM admission_rates r
    WHERE r.event_id = p_event AND r.base < p_rank
    ORDER BY r.since DESC LIMIT 1
$$;
