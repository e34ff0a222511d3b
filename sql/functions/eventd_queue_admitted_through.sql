-- admittedThrough at p_at: least(ranks given by p_at, the allowance at p_at).
-- Rank r is admitted at p_at exactly when r <= this.

CREATE OR REPLACE FUNCTION eventd_queue_admitted_through(p_event uuid, p_at timestamptz)
RETURNS bigint
LANGUAGE plpgsql STABLE SET enable_seqscan = off SET plan_cache_mode = auto AS $$
BEGIN
    RETURN least(eventd_queue_ranked_by(p_event, p_at), eventd_queue_allowance(p_event, p_at));
END $$;
