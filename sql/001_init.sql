-- eventd schema, version 1.
--
-- The database has the last word on the invariant: the event row carries the
-- confirmed and waitlist counts under CHECK constraints, every change to an
-- event's registrations locks that row first, and (event, attendee) is unique.
-- The event actors are the fast path; these functions are the proof, so two
-- daemons on one database can never overbook.

CREATE FUNCTION eventd_location_key(location text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN lower(regexp_replace(regexp_replace(location, '^\s+|\s+$', '', 'g'), '\s+', ' ', 'g'));

CREATE TABLE events (
    id               uuid PRIMARY KEY,
    name             text NOT NULL CHECK (char_length(name) BETWEEN 1 AND 200),
    description      text NOT NULL DEFAULT '' CHECK (char_length(description) <= 5000),
    starts_at        timestamptz NOT NULL,
    duration_minutes integer NOT NULL CHECK (duration_minutes BETWEEN 1 AND 10080),
    ends_at          timestamptz NOT NULL,
    location         text NOT NULL CHECK (char_length(location) BETWEEN 1 AND 200),
    location_key     text GENERATED ALWAYS AS (eventd_location_key(location)) STORED,
    max_attendees    integer NOT NULL CHECK (max_attendees BETWEEN 1 AND 1000000),
    confirmed_count  integer NOT NULL DEFAULT 0,
    waitlist_count   integer NOT NULL DEFAULT 0 CHECK (waitlist_count >= 0),
    registration_seq bigint NOT NULL DEFAULT 0,
    version          bigint NOT NULL DEFAULT 1,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT events_never_overbooked
        CHECK (confirmed_count BETWEEN 0 AND max_attendees),
    CONSTRAINT events_ends_after_start CHECK (ends_at > starts_at)
);
CREATE INDEX events_by_date ON events (starts_at, id);
CREATE INDEX events_by_location ON events (location_key, starts_at);
CREATE INDEX events_by_confirmed ON events (confirmed_count DESC, created_at, id);

CREATE TABLE attendees (
    id         uuid PRIMARY KEY,
    name       text NOT NULL CHECK (char_length(name) BETWEEN 1 AND 200),
    email      text NOT NULL CHECK (char_length(email) BETWEEN 3 AND 254),
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX attendees_email_unique ON attendees (lower(email));
CREATE INDEX attendees_by_created ON attendees (created_at, id);

CREATE TABLE registrations (
    id          uuid PRIMARY KEY,
    event_id    uuid NOT NULL REFERENCES events (id) ON DELETE CASCADE,
    attendee_id uuid NOT NULL REFERENCES attendees (id),
    status      text NOT NULL CHECK (status IN ('confirmed', 'waitlisted')),
    -- Per-event arrival order: registration order for the confirmed,
    -- queue order for the waitlisted.
    seq         bigint NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    confirmed_at timestamptz,
    reminded_at timestamptz,  -- set once, in the transaction that queues the reminder
    CONSTRAINT registrations_one_per_attendee UNIQUE (event_id, attendee_id)
);
CREATE INDEX registrations_by_event ON registrations (event_id, status, seq);
CREATE INDEX registrations_by_attendee ON registrations (attendee_id, created_at, id);

-- Email outbox: written in the same transaction as the change that causes the
-- message; the mailer sends, retries and marks rows. The payload is the data
-- as it was at that moment (an event may be gone by the time it is sent).
CREATE TABLE email_outbox (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    kind            text NOT NULL CHECK (kind IN (
                        'registration_confirmed', 'waitlisted', 'promoted',
                        'registration_cancelled', 'event_cancelled', 'event_changed',
                        'reminder')),
    recipient       text NOT NULL,
    payload         jsonb NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT clock_timestamp(),
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    claimed_until   timestamptz,  -- a mailer is sending it until then
    sent_at         timestamptz,
    last_error      text
);
CREATE INDEX email_outbox_due ON email_outbox (next_attempt_at) WHERE sent_at IS NULL;

-- Queue one message about one registration, as things stand now.
-- PL/pgSQL, not SQL: its plan is prepared once per connection, not per call.
CREATE FUNCTION eventd_enqueue_email(p_kind text, p_registration uuid) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO email_outbox (kind, recipient, payload)
    SELECT p_kind, a.email, jsonb_build_object(
        'attendee', jsonb_build_object('id', a.id, 'name', a.name, 'email', a.email),
        'event', jsonb_build_object('id', e.id, 'name', e.name, 'startsAt', e.starts_at,
                                    'endsAt', e.ends_at, 'location', e.location),
        'registration', jsonb_build_object('id', r.id, 'status', r.status))
    FROM registrations r
    JOIN attendees a ON a.id = r.attendee_id
    JOIN events e ON e.id = r.event_id
    WHERE r.id = p_registration;
END $$;

-- The change to one event's counts: what every function below returns, so the
-- event actor can adopt the database's truth.
CREATE TYPE eventd_event_counts AS (
    event_id        uuid,
    max_attendees   integer,
    confirmed_count integer,
    waitlist_count  integer,
    version         bigint,
    updated_at      timestamptz
);

-- Register one attendee. Outcomes: confirmed, waitlisted, event_full,
-- already_registered, event_not_found, attendee_not_found, event_started.
CREATE FUNCTION eventd_register(
    p_id uuid, p_event uuid, p_attendee uuid, p_waitlist boolean,
    OUT outcome text, OUT created_at timestamptz, OUT counts eventd_event_counts
) LANGUAGE plpgsql AS $$
DECLARE
    ev events%ROWTYPE;
    new_status text;
BEGIN
    SELECT * INTO ev FROM events WHERE id = p_event FOR UPDATE;
    IF NOT FOUND THEN
        outcome := 'event_not_found';
        RETURN;
    END IF;
    counts := ROW(ev.id, ev.max_attendees, ev.confirmed_count, ev.waitlist_count,
                  ev.version, ev.updated_at);
    IF ev.starts_at <= now() THEN
        outcome := 'event_started';
        RETURN;
    END IF;
    PERFORM 1 FROM attendees WHERE id = p_attendee FOR KEY SHARE;
    IF NOT FOUND THEN
        outcome := 'attendee_not_found';
        RETURN;
    END IF;
    PERFORM 1 FROM registrations WHERE event_id = p_event AND attendee_id = p_attendee;
    IF FOUND THEN
        outcome := 'already_registered';
        RETURN;
    END IF;
    IF ev.confirmed_count < ev.max_attendees THEN
        new_status := 'confirmed';
    ELSIF p_waitlist THEN
        new_status := 'waitlisted';
    ELSE
        outcome := 'event_full';
        RETURN;
    END IF;
    UPDATE events SET
        confirmed_count = confirmed_count + (new_status = 'confirmed')::int,
        waitlist_count = waitlist_count + (new_status = 'waitlisted')::int,
        registration_seq = registration_seq + 1,
        version = version + 1,
        updated_at = now()
    WHERE id = p_event
    RETURNING confirmed_count, waitlist_count, version, updated_at, registration_seq
    INTO ev.confirmed_count, ev.waitlist_count, ev.version, ev.updated_at, ev.registration_seq;
    counts := ROW(ev.id, ev.max_attendees, ev.confirmed_count, ev.waitlist_count,
                  ev.version, ev.updated_at);
    INSERT INTO registrations (id, event_id, attendee_id, status, seq, confirmed_at)
    VALUES (p_id, p_event, p_attendee, new_status, ev.registration_seq,
            CASE WHEN new_status = 'confirmed' THEN now() END)
    RETURNING registrations.created_at INTO created_at;
    PERFORM eventd_enqueue_email(
        CASE new_status WHEN 'confirmed' THEN 'registration_confirmed' ELSE 'waitlisted' END,
        p_id);
    outcome := new_status;
END $$;

-- Promote waitlisted registrations of a locked event while spots are free,
-- in queue order. Returns the promoted registration ids.
CREATE FUNCTION eventd_promote(p_event uuid) RETURNS uuid[]
LANGUAGE plpgsql AS $$
DECLARE
    free integer;
    promoted uuid[];
BEGIN
    SELECT max_attendees - confirmed_count INTO free FROM events WHERE id = p_event;
    IF free IS NULL OR free <= 0 THEN
        RETURN '{}';
    END IF;
    WITH next AS (
        SELECT id FROM registrations
        WHERE event_id = p_event AND status = 'waitlisted'
        ORDER BY seq LIMIT free FOR UPDATE
    ), moved AS (
        UPDATE registrations r SET status = 'confirmed', confirmed_at = now()
        FROM next WHERE r.id = next.id
        RETURNING r.id
    )
    SELECT coalesce(array_agg(id), '{}') INTO promoted FROM moved;
    PERFORM eventd_enqueue_email('promoted', id) FROM unnest(promoted) AS id;
    IF cardinality(promoted) > 0 THEN
        UPDATE events SET
            confirmed_count = confirmed_count + cardinality(promoted),
            waitlist_count = waitlist_count - cardinality(promoted)
        WHERE id = p_event;
    END IF;
    RETURN promoted;
END $$;

-- Cancel one registration of an event; a freed spot goes to the waitlist.
-- Outcomes: cancelled, not_found.
CREATE FUNCTION eventd_cancel(
    p_id uuid, p_event uuid,
    OUT outcome text, OUT promoted uuid[], OUT counts eventd_event_counts
) LANGUAGE plpgsql AS $$
DECLARE
    old_status text;
BEGIN
    PERFORM 1 FROM events WHERE id = p_event FOR UPDATE;
    IF EXISTS (SELECT 1 FROM registrations WHERE id = p_id AND event_id = p_event) THEN
        PERFORM eventd_enqueue_email('registration_cancelled', p_id);
    END IF;
    DELETE FROM registrations WHERE id = p_id AND event_id = p_event
    RETURNING status INTO old_status;
    IF NOT FOUND THEN
        outcome := 'not_found';
        promoted := '{}';
        SELECT id, max_attendees, confirmed_count, waitlist_count, version, updated_at
        INTO counts FROM events WHERE id = p_event;
        RETURN;
    END IF;
    UPDATE events SET
        confirmed_count = confirmed_count - (old_status = 'confirmed')::int,
        waitlist_count = waitlist_count - (old_status = 'waitlisted')::int
    WHERE id = p_event;
    promoted := eventd_promote(p_event);
    UPDATE events SET version = version + 1, updated_at = now() WHERE id = p_event
    RETURNING id, max_attendees, confirmed_count, waitlist_count, version, updated_at
    INTO counts;
    outcome := 'cancelled';
END $$;

-- A batch of registration operations, applied in the order given. The writer
-- sends every actor's pending operations in one call (one round trip, one
-- transaction); ordering by event keeps row locks in one order across daemons.
CREATE FUNCTION eventd_registration_ops(
    p_kinds text[], p_ids uuid[], p_events uuid[], p_attendees uuid[], p_waitlist boolean[]
) RETURNS TABLE (
    idx integer, outcome text, created_at timestamptz, promoted uuid[], counts eventd_event_counts
) LANGUAGE plpgsql AS $$
DECLARE
    r record;
BEGIN
    FOR i IN 1 .. coalesce(cardinality(p_kinds), 0) LOOP
        idx := i;
        IF p_kinds[i] = 'register' THEN
            SELECT * INTO r FROM eventd_register(p_ids[i], p_events[i], p_attendees[i], p_waitlist[i]);
            outcome := r.outcome; created_at := r.created_at; promoted := '{}'; counts := r.counts;
        ELSE
            SELECT * INTO r FROM eventd_cancel(p_ids[i], p_events[i]);
            outcome := r.outcome; created_at := NULL; promoted := r.promoted; counts := r.counts;
        END IF;
        RETURN NEXT;
    END LOOP;
END $$;

-- Remove an attendee and every registration they hold, freeing spots and
-- promoting waitlists. Returns one row per event whose counts changed.
-- Locks the events first (in id order), then the attendee: the order
-- eventd_register takes them in, so the two never deadlock.
CREATE FUNCTION eventd_delete_attendee(p_attendee uuid)
RETURNS TABLE (existed boolean, promoted uuid[], counts eventd_event_counts)
LANGUAGE plpgsql AS $$
DECLARE
    reg record;
    c record;
BEGIN
    PERFORM 1 FROM events WHERE id IN (
        SELECT event_id FROM registrations WHERE attendee_id = p_attendee
    ) ORDER BY id FOR UPDATE;
    PERFORM 1 FROM attendees WHERE id = p_attendee FOR UPDATE;
    IF NOT FOUND THEN
        existed := false;
        RETURN NEXT;
        RETURN;
    END IF;
    existed := true;
    -- Lock the events in id order, the same order every batch uses.
    FOR reg IN
        SELECT r.id, r.event_id FROM registrations r
        WHERE r.attendee_id = p_attendee ORDER BY r.event_id
    LOOP
        SELECT * INTO c FROM eventd_cancel(reg.id, reg.event_id);
        promoted := c.promoted;
        counts := c.counts;
        RETURN NEXT;
    END LOOP;
    DELETE FROM attendees WHERE id = p_attendee;
END $$;

-- Queue the reminder of every confirmed registration of an event that was
-- confirmed by the reminder moment and not reminded yet, if the event has not
-- begun. Marking and queueing are one statement: each registration is
-- reminded once, however many daemons fire at the same moment.
CREATE FUNCTION eventd_send_reminders(p_event uuid, p_before interval) RETURNS integer
LANGUAGE sql AS $$
    WITH due AS (
        UPDATE registrations r SET reminded_at = now()
        FROM events e
        WHERE e.id = p_event AND r.event_id = e.id AND r.status = 'confirmed'
          AND r.reminded_at IS NULL AND r.confirmed_at <= e.starts_at - p_before
          AND now() < e.starts_at
        RETURNING r.id
    ), queued AS (
        SELECT eventd_enqueue_email('reminder', id) FROM due
    )
    SELECT count(*)::integer FROM queued
$$;
