-- Bring an event's queue in line with its settings, after they were made or
-- changed (in the same transaction, after the events row's update):
--
-- - admission set and no queue yet: the queue is made, opening at
--   salesStartAt, or now if that is earlier or absent;
-- - not open yet: the opening follows salesStartAt (never into the past);
--   a queue whose instant has come opens now;
-- - open, and the rate changed: a new admission_rates row from now, whose
--   base is the allowance now, so the new rate applies from this moment and
--   nobody admitted is moved back. Ranks and the opening never change.
--
-- Called after the events row's update, so a registration deciding an
-- admission (eventd_register_run locks the event's row) waits for this
-- change's COMMIT and sees the queue whole. The queue row is taken FOR UPDATE
-- against another change of the settings.

CREATE OR REPLACE FUNCTION eventd_queue_configure(
    p_event uuid, p_at timestamptz DEFAULT clock_timestamp()
) RETURNS void
LANGUAGE plpgsql SET enable_seqscan = off SET plan_cache_mode = auto AS $$
DECLARE
    v_sales timestamptz;
    v_rate integer;
    v_queue admission_queues%ROWTYPE;
    v_current integer;
BEGIN
    SELECT sales_start_at, admission_rate_per_minute INTO v_sales, v_rate
    FROM events WHERE id = p_event;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    SELECT * INTO v_queue FROM admission_queues WHERE event_id = p_event FOR UPDATE;
    IF NOT FOUND THEN
        IF v_rate IS NULL THEN
            RETURN;  -- no queue, and none wanted
        END IF;
        INSERT INTO admission_queues (event_id, opens_at)
        VALUES (p_event, greatest(coalesce(v_sales, p_at), p_at))
        RETURNING * INTO v_queue;
    ELSIF v_queue.opened_at IS NULL THEN
        UPDATE admission_queues SET opens_at = greatest(coalesce(v_sales, p_at), p_at)
        WHERE event_id = p_event RETURNING * INTO v_queue;
    END IF;
    IF v_rate IS NULL THEN
        RETURN;  -- the queue stays as it is, unused while the event has no admission
    END IF;
    IF v_queue.opened_at IS NULL THEN
        IF v_queue.opens_at <= p_at THEN
            PERFORM eventd_queue_open(p_event);
        END IF;
        RETURN;
    END IF;
    SELECT rate_per_minute INTO v_current FROM admission_rates
    WHERE event_id = p_event AND since <= p_at ORDER BY since DESC LIMIT 1;
    IF v_current IS DISTINCT FROM v_rate THEN
        INSERT INTO admission_rates (event_id, since, base, rate_per_minute)
        VALUES (p_event, p_at, eventd_queue_allowance(p_event, p_at), v_rate)
        ON CONFLICT (event_id, since) DO UPDATE SET rate_per_minute = excluded.rate_per_minute;
    END IF;
END $$;
