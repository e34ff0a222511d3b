-- eventd schema, version 5: a run of registrations on one event, in one pass.
--
-- In a ticket rush an event actor's turn holds many registrations for its
-- event, and the writer hands them to eventd_registration_ops in order. One
-- eventd_register per registration locked the event row, updated it, looked
-- the attendee up and built the confirmation email with a join — per
-- registration. eventd_register_run takes a run of consecutive registrations
-- of one event and does each of those once: one lock, one look-up of the
-- attendees and of their registrations, the outcomes decided in order in
-- memory, one UPDATE of the event row, one INSERT of the registrations and
-- one of their emails. Outcomes, counts and versions are exactly those the
-- registrations would have had one by one (tests/test_writer.py compares
-- them). Its fixed cost is higher than one eventd_register's: runs shorter
-- than five still go through eventd_register one by one.
--
-- Measured (PostgreSQL time per registration, commit included, batches on one
-- event): 96 → 55 µs at 30 a batch, 152 → 141 µs at 8; at 3 it would be
-- 256 → 280 µs, hence the threshold.

CREATE FUNCTION eventd_register_run(
    p_event uuid, p_ids uuid[], p_attendees uuid[], p_waitlist boolean[]
) RETURNS TABLE (ord integer, outcome text, created_at timestamptz, counts eventd_event_counts)
LANGUAGE plpgsql AS $$
DECLARE
    ev events%ROWTYPE;
    n integer := cardinality(p_ids);
    known uuid[];            -- the run's attendees that exist, locked FOR KEY SHARE
    taken uuid[];            -- attendees registered for the event, before or in this run
    statuses text[] := '{}'; -- per registration: confirmed, waitlisted, or null (refused)
    new_ids uuid[] := '{}';  -- the registrations made, in order: their ids, attendees, statuses
    new_attendees uuid[] := '{}';
    new_statuses text[] := '{}';
    outcomes text[] := '{}';
    confirmed integer[] := '{}';
    waitlisted integer[] := '{}';
    versions bigint[] := '{}';
    changed boolean[] := '{}';  -- per registration: has the run changed the event by then
    added integer := 0;      -- registrations made by the run
    new_status text;
BEGIN
    SELECT * INTO ev FROM events WHERE id = p_event FOR UPDATE;
    IF NOT FOUND THEN
        RETURN QUERY SELECT i, 'event_not_found'::text, NULL::timestamptz,
                            NULL::eventd_event_counts
                     FROM generate_series(1, n) AS i;
        RETURN;
    END IF;
    IF ev.starts_at <= now() THEN
        RETURN QUERY SELECT i, 'event_started'::text, NULL::timestamptz,
                            ROW(ev.id, ev.max_attendees, ev.confirmed_count, ev.waitlist_count,
                                ev.version, ev.updated_at, ev.edited_version)::eventd_event_counts
                     FROM generate_series(1, n) AS i;
        RETURN;
    END IF;
    SELECT coalesce(array_agg(a.id), '{}'),
           coalesce(array_agg(a.id) FILTER (WHERE a.registered), '{}')
    INTO known, taken
    FROM (
        SELECT id, EXISTS (SELECT 1 FROM registrations r
                           WHERE r.event_id = p_event AND r.attendee_id = attendees.id) AS registered
        FROM attendees WHERE id = ANY (p_attendees) ORDER BY id FOR KEY SHARE
    ) AS a;

    FOR i IN 1 .. n LOOP
        new_status := NULL;
        IF NOT p_attendees[i] = ANY (known) THEN
            outcomes[i] := 'attendee_not_found';
        ELSIF p_attendees[i] = ANY (taken) THEN
            outcomes[i] := 'already_registered';
        ELSIF ev.confirmed_count < ev.max_attendees THEN
            new_status := 'confirmed';
            ev.confirmed_count := ev.confirmed_count + 1;
        ELSIF p_waitlist[i] THEN
            new_status := 'waitlisted';
            ev.waitlist_count := ev.waitlist_count + 1;
        ELSE
            outcomes[i] := 'event_full';
        END IF;
        IF new_status IS NOT NULL THEN
            outcomes[i] := new_status;
            taken := taken || p_attendees[i];
            new_ids := new_ids || p_ids[i];
            new_attendees := new_attendees || p_attendees[i];
            new_statuses := new_statuses || new_status;
            added := added + 1;
            ev.version := ev.version + 1;
        END IF;
        statuses[i] := new_status;
        confirmed[i] := ev.confirmed_count;
        waitlisted[i] := ev.waitlist_count;
        versions[i] := ev.version;
        changed[i] := added > 0;
    END LOOP;
    IF added = 0 THEN
        RETURN QUERY SELECT i, outcomes[i], NULL::timestamptz,
                            ROW(ev.id, ev.max_attendees, confirmed[i], waitlisted[i],
                                versions[i], ev.updated_at, ev.edited_version)::eventd_event_counts
                     FROM generate_series(1, n) AS i;
        RETURN;
    END IF;

    UPDATE events SET
        confirmed_count = ev.confirmed_count,
        waitlist_count = ev.waitlist_count,
        registration_seq = registration_seq + added,
        version = ev.version,
        updated_at = now()
    WHERE id = p_event;
    -- Each registration's seq: the event's registration_seq before the run,
    -- plus its place among the run's registrations.
    INSERT INTO registrations (id, event_id, attendee_id, status, seq, confirmed_at)
    SELECT made.id, p_event, made.attendee, made.status, ev.registration_seq + made.n,
           CASE WHEN made.status = 'confirmed' THEN now() END
    FROM unnest(new_ids, new_attendees, new_statuses) WITH ORDINALITY
         AS made (id, attendee, status, n)
    ORDER BY made.n;
    -- The emails eventd_enqueue_email would queue, in the same order.
    INSERT INTO email_outbox (kind, recipient, payload)
    SELECT CASE made.status WHEN 'confirmed' THEN 'registration_confirmed' ELSE 'waitlisted' END,
           a.email,
           jsonb_build_object(
               'attendee', jsonb_build_object('id', a.id, 'name', a.name, 'email', a.email),
               'event', jsonb_build_object('id', ev.id, 'name', ev.name,
                                           'startsAt', ev.starts_at, 'endsAt', ev.ends_at,
                                           'location', ev.location),
               'registration', jsonb_build_object('id', made.id, 'status', made.status))
    FROM unnest(new_ids, new_attendees, new_statuses) WITH ORDINALITY
         AS made (id, attendee, status, n)
    JOIN attendees a ON a.id = made.attendee
    ORDER BY made.n;

    RETURN QUERY SELECT i, outcomes[i],
                        CASE WHEN statuses[i] IS NOT NULL THEN now() END,
                        ROW(ev.id, ev.max_attendees, confirmed[i], waitlisted[i], versions[i],
                            CASE WHEN changed[i] THEN now() ELSE ev.updated_at END,
                            ev.edited_version)::eventd_event_counts
                 FROM generate_series(1, n) AS i;
END $$;

-- As in version 1, but five or more consecutive registrations of one event go
-- to eventd_register_run together.
CREATE OR REPLACE FUNCTION eventd_registration_ops(
    p_kinds text[], p_ids uuid[], p_events uuid[], p_attendees uuid[], p_waitlist boolean[]
) RETURNS TABLE (
    idx integer, outcome text, created_at timestamptz, promoted uuid[], counts eventd_event_counts
) LANGUAGE plpgsql AS $$
DECLARE
    n integer := coalesce(cardinality(p_kinds), 0);
    i integer := 1;
    j integer;
    r record;
BEGIN
    WHILE i <= n LOOP
        j := i;
        IF p_kinds[i] = 'register' THEN
            WHILE j < n AND p_kinds[j + 1] = 'register' AND p_events[j + 1] = p_events[i] LOOP
                j := j + 1;
            END LOOP;
        END IF;
        IF j - i + 1 >= 5 THEN
            -- Five or more: one pass is cheaper (below that, its fixed cost is not).
            RETURN QUERY
                SELECT i - 1 + run.ord, run.outcome, run.created_at, '{}'::uuid[], run.counts
                FROM eventd_register_run(p_events[i], p_ids[i:j], p_attendees[i:j],
                                         p_waitlist[i:j]) AS run;
            i := j + 1;
            CONTINUE;
        END IF;
        idx := i;
        IF p_kinds[i] = 'register' THEN
            SELECT * INTO r FROM eventd_register(p_ids[i], p_events[i], p_attendees[i], p_waitlist[i]);
            outcome := r.outcome; created_at := r.created_at; promoted := '{}'; counts := r.counts;
        ELSE
            SELECT * INTO r FROM eventd_cancel(p_ids[i], p_events[i]);
            outcome := r.outcome; created_at := NULL; promoted := r.promoted; counts := r.counts;
        END IF;
        RETURN NEXT;
        i := i + 1;
    END LOOP;
END $$;
