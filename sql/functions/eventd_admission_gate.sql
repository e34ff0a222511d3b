-- Both gates of a registration, in the order they answer: 'sales_not_open'
-- before salesStartAt (eventd_sales_open), then the admission
-- (eventd_use_admission: 'ok' marks the admission used), one registration
-- at a time. The registration path (eventd_register_run) decides the same
-- gates, in the same order and words, set-wise for a run, in the statement
-- that registers.

CREATE OR REPLACE FUNCTION eventd_admission_gate(
    p_event uuid, p_token_hash bytea, p_registration uuid DEFAULT NULL,
    p_at timestamptz DEFAULT now()
) RETURNS text
LANGUAGE plpgsql SET enable_seqscan = off SET plan_cache_mode = auto AS $$
DECLARE
    v_sales text := eventd_sales_open(p_event, p_at);
BEGIN
    IF v_sales <> 'ok' THEN
        RETURN v_sales;
    END IF;
    RETURN eventd_use_admission(p_event, p_token_hash, p_registration, p_at);
END $$;
