-- How many ranks an event's queue had given by p_at. Ranks are given in time
-- order (all pre-sale joiners at the opening, then each join as it is made),
-- so this is the highest rank given by then: one probe of an index.

CREATE OR REPLACE FUNCTION eventd_queue_ranked_by(p_event uuid, p_at timestamptz) RETURNS bigint
LANGUAGE sql STABLE SET enable_seqscan = off AS $$
    SELECT coalesce((
        SELECT t.rank FROM queue_tickets t
        WHERE t.event_id = p_event AND t.rank IS NOT NULL AND t.ranked_at <= p_at
        ORDER BY t.ranked_at DESC, t.rank DESC LIMIT 1
    ), 0)
$$;
