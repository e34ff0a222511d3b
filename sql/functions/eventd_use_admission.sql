-- The admission gate of a registration, decided and marked inside the
-- caller's transaction (the one that makes the registration):
--
--   'ok'                 the event has no admission queue; or p_token_hash is
--                        the SHA-256 of an admitted, unexpired, unused
--                        ticket of this event, now marked used (by p_registration)
--   'admission_required' no token, not this event's, or not admitted yet
--   'admission_used'     the ticket already made a registration
--   'admission_expired'  its expiresAt has passed
--
-- Exactly once: the mark is an UPDATE guarded by used_at IS NULL, so of
-- concurrent uses of one token (any daemons) one gets 'ok' and the rest wait
-- for its COMMIT and get 'admission_used' (or, if it rolled back, one of
-- them gets 'ok'). Call it only where the registration will be made, after
-- every other refusal: a later refusal in the same transaction must roll the
-- mark back with it. The queue row is taken FOR KEY SHARE: joins go on,
-- a rate change or the opening is waited for, so the decision sees it whole.

CREATE OR REPLACE FUNCTION eventd_use_admission(
    p_event uuid, p_token_hash bytea, p_registration uuid DEFAULT NULL,
    p_at timestamptz DEFAULT now()
) RETURNS text
LANGUAGE plpgsql SET enable_seqscan = off SET plan_cache_mode = auto AS $$
DECLARE
    v_ticket uuid;
    v_status text;
BEGIN
    IF NOT EXISTS (
        SELECT 1 FROM events WHERE id = p_event AND admission_rate_per_minute IS NOT NULL
    ) THEN
        RETURN 'ok';
    END IF;
    IF p_token_hash IS NULL THEN
        RETURN 'admission_required';
    END IF;
    PERFORM 1 FROM admission_queues WHERE event_id = p_event FOR KEY SHARE;
    SELECT id INTO v_ticket FROM queue_tickets
    WHERE token_hash = p_token_hash AND event_id = p_event;
    IF NOT FOUND THEN
        RETURN 'admission_required';
    END IF;
    SELECT status INTO v_status FROM eventd_queue_ticket(v_ticket, p_at);
    IF v_status = 'waiting' THEN
        RETURN 'admission_required';
    ELSIF v_status = 'used' THEN
        RETURN 'admission_used';
    ELSIF v_status = 'expired' THEN
        RETURN 'admission_expired';
    END IF;
    UPDATE queue_tickets SET used_at = p_at, used_by = p_registration
    WHERE id = v_ticket AND used_at IS NULL;
    IF NOT FOUND THEN
        RETURN 'admission_used';  -- another registration used it first
    END IF;
    RETURN 'ok';
END $$;
