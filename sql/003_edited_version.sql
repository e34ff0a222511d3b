-- eventd schema, version 3: the version of an event's last edit.
--
-- A batch's counts tell an event actor when its event's version moved past
-- its own changes: another daemon on the database changed the event. Most
-- such changes are registrations and cancellations — new counts, the same
-- fields — and the counts say everything; only an edit of the event's fields
-- makes the actor load the event again. ``edited_version`` says which: the
-- version of the event's last edit (its creation, or an UpdateEvent).
-- Rows from before this migration count every version as a possible edit.

ALTER TABLE events ADD COLUMN edited_version bigint NOT NULL DEFAULT 1;
UPDATE events SET edited_version = version;

ALTER TYPE eventd_event_counts ADD ATTRIBUTE edited_version bigint;

-- As in version 1, with edited_version in the counts.
CREATE OR REPLACE FUNCTION eventd_register(
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

-- As in version 1, with edited_version in the counts.
CREATE OR REPLACE FUNCTION eventd_cancel(
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
        SELECT id, max_attendees, confirmed_count, waitlist_count, version, updated_at,
               edited_version
        INTO counts FROM events WHERE id = p_event;
        RETURN;
    END IF;
    UPDATE events SET
        confirmed_count = confirmed_count - (old_status = 'confirmed')::int,
        waitlist_count = waitlist_count - (old_status = 'waitlisted')::int
    WHERE id = p_event;
    promoted := eventd_promote(p_event);
    UPDATE events SET version = version + 1, updated_at = now() WHERE id = p_event
    RETURNING id, max_attendees, confirmed_count, waitlist_count, version, updated_at,
               edited_version
    INTO counts;
    outcome := 'cancelled';
END $$;
