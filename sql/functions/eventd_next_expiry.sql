-- When the event's next hold or offer expires (NULL: none is pending), read
-- from the registrations_due index. The event's actor arms its timer for it.

CREATE OR REPLACE FUNCTION eventd_next_expiry(p_event uuid) RETURNS timestamptz
LANGUAGE sql STABLE SET enable_seqscan = off AS $$
    SELECT min(expires_at) FROM registrations
    WHERE event_id = p_event AND status IN ('held', 'offered')
$$;
