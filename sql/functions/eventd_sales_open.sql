-- The sales gate of a registration: 'sales_not_open' before the event's
-- salesStartAt (by the database's clock), else 'ok' (also for an unknown
-- event: the registration's own checks say not found).

CREATE OR REPLACE FUNCTION eventd_sales_open(p_event uuid, p_at timestamptz DEFAULT now())
RETURNS text
LANGUAGE sql STABLE SET enable_seqscan = off AS $$
    SELECT CASE WHEN EXISTS (
        SELECT 1 FROM events WHERE id = p_event AND sales_start_at > p_at
    ) THEN 'sales_not_open' ELSE 'ok' END
$$;
