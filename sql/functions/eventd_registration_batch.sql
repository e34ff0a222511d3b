-- A batch of registration operations, applied in the order given, in the
-- writer's one transaction. Kinds: 'register' (with waitlist, hold and
-- by_email flags), 'cancel', 'confirm' and 'expire' (the event's due holds
-- and offers; its registration id is NULL). Answers one row per operation
-- (idx its place in the batch): the outcome, the registration's id (one is
-- made here, gen_random_uuid(), for a registration sent without), the
-- registrations offered or promoted (NULL when none), a new registration's
-- manage token (NULL when it went by email) and hold deadline, the event's
-- next pending expiry after a cancel, confirm or expire, the event's
-- counts after the operation as columns of their own, in the order of
-- EventCounts, and how many holds and offers an expire (or a late confirm)
-- expired.
--
-- The batch never waits for an event another transaction holds (an admin's
-- transaction, another daemon's batch): it locks its events first, in id
-- order, skipping the locked ones, and answers each operation on a skipped
-- event 'busy', with no counts and nothing written. The caller sends those
-- again in a later batch; the rest commit now.
--
-- A registration's p_admission is the SHA-256 of the Admission-Token it
-- sent (NULL: none); eventd_register_run decides the sales and admission
-- gates with the rest, and uses the admission only when it registers.
--
-- The batch is cut into runs of registrations: any other operation, an
-- operation on a busy event, or a pair of event and attendee or an
-- admission the run holds already, ends a run. Each run goes to eventd_register_run whole; each
-- other operation to its function, one at a time. The answers are what
-- registering one at a time would give.

DROP FUNCTION IF EXISTS eventd_registration_batch(text[], uuid[], uuid[], uuid[], boolean[]);
DROP FUNCTION IF EXISTS eventd_registration_batch(text[], uuid[], uuid[], uuid[], boolean[],
                                                  boolean[], boolean[]);

CREATE OR REPLACE FUNCTION eventd_registration_batch(
    p_kinds text[], p_ids uuid[], p_events uuid[], p_attendees uuid[], p_waitlist boolean[],
    p_hold boolean[], p_by_email boolean[], p_admission bytea[] DEFAULT NULL
) RETURNS TABLE (
    idx integer, registration_id uuid, outcome text, created_at timestamptz, promoted uuid[],
    token text, expires_at timestamptz, next_expiry timestamptz,
    event_id uuid, max_attendees integer, confirmed_count integer, waitlist_count integer,
    version bigint, updated_at timestamptz, edited_version bigint, held_count integer,
    expired_holds integer, expired_offers integer
) LANGUAGE plpgsql SET enable_seqscan = off SET plan_cache_mode = auto AS $$
DECLARE
    total integer := coalesce(cardinality(p_kinds), 0);
    run_from integer := 1;  -- the first registration of the run being gathered
    run_pairs text[] := '{}';
    run_admissions bytea[] := '{}';
    pair text;
    locked uuid[];
    busy uuid[];
    r record;
BEGIN
    locked := ARRAY(SELECT e.id FROM events e WHERE e.id = ANY (p_events)
                    ORDER BY e.id FOR UPDATE SKIP LOCKED);
    -- Skipped: they exist (as this transaction sees them), but are not ours to lock.
    busy := ARRAY(SELECT e.id FROM events e WHERE e.id = ANY (p_events)
                  AND NOT e.id = ANY (locked));
    FOR i IN 1 .. total + 1 LOOP
        pair := CASE WHEN i <= total AND p_kinds[i] = 'register'
                     AND NOT p_events[i] = ANY (busy)
                     THEN p_events[i]::text || p_attendees[i]::text END;
        IF (pair IS NULL OR pair = ANY (run_pairs)
            OR coalesce(p_admission[i] = ANY (run_admissions), false)) AND run_from < i THEN
            RETURN QUERY
            SELECT run_from - 1 + x.n, x.registration_id, x.outcome, x.created_at, NULL::uuid[],
                   x.token, x.expires_at, NULL::timestamptz,
                   x.event_id, x.max_attendees, x.confirmed_count, x.waitlist_count, x.version,
                   x.updated_at, x.edited_version, x.held_count, NULL::integer, NULL::integer
            FROM eventd_register_run(
                p_ids[run_from:i - 1], p_events[run_from:i - 1], p_attendees[run_from:i - 1],
                p_waitlist[run_from:i - 1], p_hold[run_from:i - 1],
                p_by_email[run_from:i - 1], p_admission[run_from:i - 1]) AS x;
            run_from := i;
            run_pairs := '{}';
            run_admissions := '{}';
        END IF;
        EXIT WHEN i > total;
        IF pair IS NOT NULL THEN
            run_pairs := run_pairs || pair;
            IF p_admission[i] IS NOT NULL THEN
                run_admissions := run_admissions || p_admission[i];
            END IF;
            CONTINUE;
        END IF;
        IF p_events[i] = ANY (busy) THEN
            RETURN QUERY
            SELECT i, p_ids[i], 'busy'::text, NULL::timestamptz, NULL::uuid[], NULL::text,
                   NULL::timestamptz, NULL::timestamptz, NULL::uuid,
                   NULL::integer, NULL::integer, NULL::integer, NULL::bigint,
                   NULL::timestamptz, NULL::bigint, NULL::integer, NULL::integer, NULL::integer;
            run_from := i + 1;
            CONTINUE;
        END IF;
        IF p_kinds[i] = 'cancel' THEN
            SELECT c.outcome, c.promoted, c.counts, c.next_expiry, NULL::integer AS expired_holds,
                   NULL::integer AS expired_offers INTO r
            FROM eventd_cancel(p_ids[i], p_events[i]) AS c;
        ELSIF p_kinds[i] = 'confirm' THEN
            SELECT c.outcome, c.promoted, c.counts, c.next_expiry, c.expired_holds,
                   c.expired_offers INTO r
            FROM eventd_confirm(p_ids[i], p_events[i]) AS c;
        ELSE
            SELECT c.outcome, c.promoted, c.counts, c.next_expiry, c.expired_holds,
                   c.expired_offers INTO r
            FROM eventd_expire_due(p_events[i]) AS c;
        END IF;
        RETURN QUERY
        SELECT i, p_ids[i], r.outcome, NULL::timestamptz, nullif(r.promoted, '{}'), NULL::text,
               NULL::timestamptz, r.next_expiry, (r.counts).*, r.expired_holds, r.expired_offers;
        run_from := i + 1;
    END LOOP;
END $$;
