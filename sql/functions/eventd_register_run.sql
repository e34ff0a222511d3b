-- Register a run of registrations set-wise: no pair of event and attendee
-- twice in a run (eventd_registration_batch cuts the runs). Answers one row
-- per registration, n its place in the run, with the event's counts as they
-- stand after it.
--
-- Three statements whatever the run's length: the run's events locked in id
-- order (the order every batch and every daemon locks them in), its
-- attendees locked (FOR KEY SHARE), and one statement that decides every
-- outcome, inserts the registrations and their emails and moves each event's
-- counts once. Far cheaper for PostgreSQL than a call of eventd_register per
-- registration (the figures are in sql/008_registration_runs.sql).
--
-- The rules are eventd_register's, applied in the run's order: an event's
-- k-th registration that passes the checks takes a seat while k fits in the
-- seats free when the run began (max_attendees - confirmed - held); past
-- them, it joins the waitlist if asked to, or the event is full. A seat is
-- held (expires_at = now + hold_minutes) when the registration asks for a
-- hold, comes by email (an address that already had an attendee), or the
-- event confirms by email; else it is confirmed. Each registration gets a
-- manage token (its hash stored); the token is answered unless it went by
-- email (then only the 'held' email carries it). tests/test_registration_runs.py
-- holds every batch to answering, counting and writing exactly what
-- registering one at a time would.

DROP FUNCTION IF EXISTS eventd_register_run(uuid[], uuid[], uuid[], boolean[]);

CREATE OR REPLACE FUNCTION eventd_register_run(
    p_ids uuid[], p_events uuid[], p_attendees uuid[], p_waitlist boolean[],
    p_hold boolean[], p_by_email boolean[], p_admission bytea[] DEFAULT NULL
) RETURNS TABLE (
    n integer, registration_id uuid, outcome text, created_at timestamptz, token text,
    expires_at timestamptz,
    event_id uuid, max_attendees integer, confirmed_count integer, waitlist_count integer,
    version bigint, updated_at timestamptz, edited_version bigint, held_count integer
) LANGUAGE plpgsql SET enable_seqscan = off SET plan_cache_mode = auto AS $$
#variable_conflict use_column
BEGIN
    PERFORM 1 FROM events WHERE id = ANY (p_events) ORDER BY id FOR UPDATE;
    PERFORM 1 FROM attendees WHERE id = ANY (p_attendees) ORDER BY id FOR KEY SHARE;
    -- A statement of its own, after the locks: it sees the events as they are now.
    RETURN QUERY
    WITH op AS (
        SELECT o.n::integer AS n, coalesce(o.id, gen_random_uuid()) AS id, o.ev, o.att, o.wl,
               coalesce(o.hold, false) AS hold, coalesce(o.by_email, false) AS by_email,
               o.admission, eventd_new_token() AS token
        FROM unnest(p_ids, p_events, p_attendees, p_waitlist, p_hold, p_by_email, p_admission)
            WITH ORDINALITY AS o(id, ev, att, wl, hold, by_email, admission, n)
    ), checked AS MATERIALIZED (  -- once: the checks below read ``refused`` three times
        SELECT op.*, e AS event_row, a AS attendee_row, e.id AS known,
               e.max_attendees AS cap, e.confirmed_count AS conf0, e.held_count AS held0,
               e.waitlist_count AS wait0, e.version AS v0, e.updated_at AS u0,
               e.edited_version AS ev0, e.registration_seq AS seq0,
               (op.by_email OR e.confirmation = 'email') AS mailed,
               (op.hold OR op.by_email OR e.confirmation = 'email') AS holds,
               now() + e.hold_minutes * interval '1 minute' AS hold_until,
               t.id AS ticket,
               CASE
                   WHEN e.id IS NULL THEN 'event_not_found'
                   WHEN e.starts_at <= now() THEN 'event_started'
                   -- The gates, before anything is said of the attendee.
                   WHEN e.sales_start_at > now() THEN 'sales_not_open'
                   WHEN e.admission_rate_per_minute IS NOT NULL
                        AND (admitted.at IS NULL OR admitted.at > now())
                       THEN 'admission_required'  -- no ticket of this event's, or waiting
                   WHEN t.used_at IS NOT NULL THEN 'admission_used'
                   WHEN admitted.at + make_interval(secs => e.admission_token_minutes * 60)
                        <= now() THEN 'admission_expired'
                   WHEN a.id IS NULL THEN 'attendee_not_found'
                   WHEN r.id IS NOT NULL THEN 'already_registered'
               END AS refused
        FROM op
        LEFT JOIN events e ON e.id = op.ev
        LEFT JOIN attendees a ON a.id = op.att
        -- LATERAL ... LIMIT 1: a lookup by key for each registration, whatever the
        -- statistics said when the plan was kept. A join may read the partial index
        -- whole, since this query repeats its predicate (tests/test_sql_plans.py).
        LEFT JOIN LATERAL (
            SELECT r.id FROM registrations r WHERE r.event_id = op.ev AND r.attendee_id = op.att
                AND r.status IN ('held', 'offered', 'confirmed', 'waitlisted') LIMIT 1
        ) r ON true
        -- The admission's ticket: only for a queued event, only this event's.
        LEFT JOIN queue_tickets t ON t.token_hash = op.admission AND t.event_id = op.ev
            AND e.admission_rate_per_minute IS NOT NULL
        CROSS JOIN LATERAL (
            SELECT CASE WHEN t.id IS NOT NULL
                        THEN eventd_queue_admitted_at(t.event_id, t.rank, t.ranked_at) END AS at
        ) AS admitted
    ), decided AS (
        SELECT c.*, coalesce(c.refused, CASE
                   -- k: this registration's place among the event's that passed the checks
                   WHEN count(*) FILTER (WHERE c.refused IS NULL) OVER w
                        <= c.cap - c.conf0 - c.held0
                       THEN CASE WHEN c.holds THEN 'held' ELSE 'confirmed' END
                   WHEN c.wl THEN 'waitlisted'
                   ELSE 'event_full'
               END) AS result
        FROM checked c WINDOW w AS (PARTITION BY c.ev ORDER BY c.n)
    ), counted AS (
        SELECT d.*,
               sum((d.result = 'confirmed')::integer) OVER w AS conf_n,
               sum((d.result = 'held')::integer) OVER w AS held_n,
               sum((d.result = 'waitlisted')::integer) OVER w AS wait_n
        FROM decided d WINDOW w AS (PARTITION BY d.ev ORDER BY d.n)
    ), added AS (
        INSERT INTO registrations (id, event_id, attendee_id, status, seq, confirmed_at,
                                   expires_at, token_hashes, updated_at)
        SELECT c.id, c.ev, c.att, c.result, c.seq0 + c.conf_n + c.held_n + c.wait_n,
               CASE WHEN c.result = 'confirmed' THEN now() END,
               CASE WHEN c.result = 'held' THEN c.hold_until END,
               ARRAY[sha256(convert_to(c.token, 'UTF8'))], now()
        FROM counted c WHERE c.result IN ('confirmed', 'held', 'waitlisted')
    ), used AS (  -- the admissions of the registrations made
        UPDATE queue_tickets q SET used_at = now(), used_by = c.id
        FROM counted c
        WHERE q.id = c.ticket AND c.result IN ('confirmed', 'held', 'waitlisted')
            AND q.used_at IS NULL
    ), emailed AS (
        INSERT INTO email_outbox (kind, recipient, payload)
        SELECT CASE c.result WHEN 'confirmed' THEN 'registration_confirmed'
                             WHEN 'held' THEN 'held' ELSE 'waitlisted' END,
               (c.attendee_row).email,
               eventd_email_payload(c.attendee_row, c.event_row, c.id, c.result, c.token,
                                    CASE WHEN c.result = 'held' THEN c.hold_until END)
        FROM counted c
        WHERE c.result IN ('confirmed', 'waitlisted') OR (c.result = 'held' AND c.mailed)
    ), hooked AS (  -- and their webhooks (eventd_enqueue_webhooks says which), in order
        INSERT INTO webhook_deliveries (endpoint_id, type, body) SELECT w.* FROM counted c,
            eventd_webhook_registration('registration.' || c.result, c.result, c.id, c.ev, c.att,
                                        c.wait0 + c.wait_n, now(),
                                        CASE WHEN c.result = 'held' THEN c.hold_until END) w
        WHERE c.result IN ('confirmed', 'held', 'waitlisted') ORDER BY c.n
    ), moved AS (
        UPDATE events e SET
            confirmed_count = e.confirmed_count + t.conf,
            held_count = e.held_count + t.held,
            waitlist_count = e.waitlist_count + t.wait,
            registration_seq = e.registration_seq + t.conf + t.held + t.wait,
            version = e.version + t.conf + t.held + t.wait,
            updated_at = now()
        FROM (SELECT c.ev, max(c.conf_n) AS conf, max(c.held_n) AS held, max(c.wait_n) AS wait
              FROM counted c GROUP BY c.ev
              HAVING max(c.conf_n) + max(c.held_n) + max(c.wait_n) > 0) AS t
        WHERE e.id = t.ev
    )
    SELECT c.n, c.id, c.result,
           CASE WHEN c.result IN ('confirmed', 'held', 'waitlisted') THEN now() END,
           CASE WHEN c.result IN ('confirmed', 'held', 'waitlisted') AND NOT c.mailed
                THEN c.token END,
           CASE WHEN c.result = 'held' THEN c.hold_until END,
           c.known, c.cap, (c.conf0 + c.conf_n)::integer, (c.wait0 + c.wait_n)::integer,
           c.v0 + c.conf_n + c.held_n + c.wait_n,
           CASE WHEN c.conf_n + c.held_n + c.wait_n > 0 THEN now() ELSE c.u0 END,
           c.ev0, (c.held0 + c.held_n)::integer
    FROM counted c ORDER BY c.n;
END $$;
