-- A ticket as of p_at: its event, its token's hash (the caller compares it in
-- constant time), rank, status and times. status: 'waiting' (no rank yet,
-- or the frontier has not reached it), 'admitted' (its token works until
-- expires_at), 'used' (it made its registration), 'expired'. No row for an
-- unknown ticket.

CREATE OR REPLACE FUNCTION eventd_queue_ticket(
    p_ticket uuid, p_at timestamptz DEFAULT clock_timestamp()
) RETURNS TABLE (
    event_id uuid, token_hash bytea, rank bigint, status text, opens_at timestamptz,
    admitted_through bigint, admitted_at timestamptz, expires_at timestamptz,
    used_at timestamptz, at timestamptz
)
LANGUAGE sql STABLE SET enable_seqscan = off AS $$
    SELECT t.event_id, t.token_hash, t.rank,
           CASE WHEN admitted.at IS NULL THEN 'waiting'
                WHEN t.used_at IS NOT NULL THEN 'used'
                WHEN admitted.at + make_interval(secs => e.admission_token_minutes * 60) <= p_at
                    THEN 'expired'
                ELSE 'admitted' END,
           q.opens_at,
           CASE WHEN q.opened_at IS NULL THEN 0
                ELSE least(eventd_queue_ranked_by(t.event_id, p_at),
                           eventd_queue_allowance(t.event_id, p_at)) END,
           admitted.at,
           admitted.at + make_interval(secs => e.admission_token_minutes * 60),
           t.used_at, p_at
    FROM queue_tickets t
    JOIN admission_queues q ON q.event_id = t.event_id
    JOIN events e ON e.id = t.event_id
    CROSS JOIN LATERAL (
        SELECT CASE WHEN drawn.at <= p_at THEN drawn.at END AS at
        FROM (SELECT eventd_queue_admitted_at(t.event_id, t.rank, t.ranked_at) AS at) AS drawn
    ) AS admitted
    WHERE t.id = p_ticket
$$;
