-- Register one attendee for one event. Outcomes: confirmed, waitlisted,
-- event_full, already_registered, event_not_found, attendee_not_found,
-- event_started. counts is the event as it stands after the answer (or as it
-- was, if nothing changed), so the event actor can adopt the database's truth.
--
-- The database has the last word on the invariant: the event row is locked
-- first (FOR UPDATE), then the attendee (FOR KEY SHARE: it cannot be deleted
-- meanwhile); the counts move under the events table's CHECK constraints and
-- (event, attendee) is unique, so two daemons on one database never overbook.
-- A registration is confirmed while spots are left, else waitlisted if asked
-- to, else the event is full; its seq is the event's next registration_seq.
--
-- These are the rules one registration at a time. Batches go through
-- eventd_register_run, which applies the same rules set-wise;
-- tests/test_registration_runs.py holds the two to the same answers.

CREATE OR REPLACE FUNCTION eventd_register(
    p_id uuid, p_event uuid, p_attendee uuid, p_waitlist boolean,
    OUT outcome text, OUT created_at timestamptz, OUT counts eventd_event_counts
) LANGUAGE plpgsql SET enable_seqscan = off SET plan_cache_mode = auto AS $$
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
                  ev.version, ev.updated_at, ev.edited_version);
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
                  ev.version, ev.updated_at, ev.edited_version);
    INSERT INTO registrations (id, event_id, attendee_id, status, seq, confirmed_at)
    VALUES (p_id, p_event, p_attendee, new_status, ev.registration_seq,
            CASE WHEN new_status = 'confirmed' THEN now() END)
    RETURNING registrations.created_at INTO created_at;
    PERFORM eventd_enqueue_email(
        CASE new_status WHEN 'confirmed' THEN 'registration_confirmed' ELSE 'waitlisted' END,
        p_id);
    outcome := new_status;
END $$;
