-- Register one attendee for one event. Outcomes: confirmed, held,
-- waitlisted, event_full, already_registered, event_not_found,
-- attendee_not_found, event_started. counts is the event as it stands after
-- the answer (or as it was, if nothing changed), so the event actor can
-- adopt the database's truth; token the manage token, unless it went by
-- email; expires_at the hold's deadline.
--
-- The database has the last word on the invariant: the event row is locked
-- first (FOR UPDATE), then the attendee (FOR KEY SHARE: it cannot be deleted
-- meanwhile); the counts move under the events table's CHECK constraints
-- (confirmed + held <= max_attendees) and an attendee has one active
-- registration per event (a partial unique index), so two daemons on one
-- database never overbook. A registration takes a seat while one is free —
-- held when it asks for a hold, comes by email or the event confirms by
-- email, else confirmed — else it is waitlisted if asked to, else the event
-- is full; its seq is the event's next registration_seq.
--
-- The gates come before anything is said of the attendee: before the
-- event's salesStartAt, 'sales_not_open'; a queued event needs p_admission,
-- the SHA-256 of an admitted ticket's token ('admission_required',
-- 'admission_used', 'admission_expired' else), which a registration made
-- here uses (a refused one leaves it unused).
--
-- These are the rules one registration at a time. Batches go through
-- eventd_register_run, which applies the same rules set-wise;
-- tests/test_registration_runs.py holds the two to the same answers.

DROP FUNCTION IF EXISTS eventd_register(uuid, uuid, uuid, boolean);
DROP FUNCTION IF EXISTS eventd_register(uuid, uuid, uuid, boolean, boolean, boolean);

CREATE OR REPLACE FUNCTION eventd_register(
    p_id uuid, p_event uuid, p_attendee uuid, p_waitlist boolean, p_hold boolean,
    p_by_email boolean, p_admission bytea DEFAULT NULL,
    OUT outcome text, OUT created_at timestamptz, OUT token text, OUT expires_at timestamptz,
    OUT counts eventd_event_counts
) LANGUAGE plpgsql SET enable_seqscan = off SET plan_cache_mode = auto AS $$
DECLARE
    ev events%ROWTYPE;
    at attendees%ROWTYPE;
    new_status text;
    mailed boolean;
    new_token text := eventd_new_token();
    v_ticket uuid;
    v_used timestamptz;
    v_admitted timestamptz;
BEGIN
    SELECT * INTO ev FROM events WHERE id = p_event FOR UPDATE;
    IF NOT FOUND THEN
        outcome := 'event_not_found';
        RETURN;
    END IF;
    counts := ROW(ev.id, ev.max_attendees, ev.confirmed_count, ev.waitlist_count,
                  ev.version, ev.updated_at, ev.edited_version, ev.held_count);
    IF ev.starts_at <= now() THEN
        outcome := 'event_started';
        RETURN;
    END IF;
    IF ev.sales_start_at > now() THEN
        outcome := 'sales_not_open';
        RETURN;
    END IF;
    IF ev.admission_rate_per_minute IS NOT NULL THEN
        SELECT t.id, t.used_at, eventd_queue_admitted_at(t.event_id, t.rank, t.ranked_at)
        INTO v_ticket, v_used, v_admitted
        FROM queue_tickets t WHERE t.token_hash = p_admission AND t.event_id = p_event;
        IF v_admitted IS NULL OR v_admitted > now() THEN
            outcome := 'admission_required';
            RETURN;
        ELSIF v_used IS NOT NULL THEN
            outcome := 'admission_used';
            RETURN;
        ELSIF v_admitted + make_interval(secs => ev.admission_token_minutes * 60) <= now() THEN
            outcome := 'admission_expired';
            RETURN;
        END IF;
    END IF;
    SELECT * INTO at FROM attendees WHERE id = p_attendee FOR KEY SHARE;
    IF NOT FOUND THEN
        outcome := 'attendee_not_found';
        RETURN;
    END IF;
    PERFORM 1 FROM registrations WHERE event_id = p_event AND attendee_id = p_attendee
        AND status IN ('held', 'offered', 'confirmed', 'waitlisted');
    IF FOUND THEN
        outcome := 'already_registered';
        RETURN;
    END IF;
    mailed := p_by_email OR ev.confirmation = 'email';
    IF ev.confirmed_count + ev.held_count < ev.max_attendees THEN
        new_status := CASE WHEN p_hold OR mailed THEN 'held' ELSE 'confirmed' END;
    ELSIF p_waitlist THEN
        new_status := 'waitlisted';
    ELSE
        outcome := 'event_full';
        RETURN;
    END IF;
    UPDATE events SET
        confirmed_count = confirmed_count + (new_status = 'confirmed')::int,
        held_count = held_count + (new_status = 'held')::int,
        waitlist_count = waitlist_count + (new_status = 'waitlisted')::int,
        registration_seq = registration_seq + 1,
        version = version + 1,
        updated_at = now()
    WHERE id = p_event
    RETURNING * INTO ev;
    counts := ROW(ev.id, ev.max_attendees, ev.confirmed_count, ev.waitlist_count,
                  ev.version, ev.updated_at, ev.edited_version, ev.held_count);
    IF new_status = 'held' THEN
        expires_at := now() + ev.hold_minutes * interval '1 minute';
    END IF;
    INSERT INTO registrations (id, event_id, attendee_id, status, seq, confirmed_at,
                               expires_at, token_hashes, updated_at)
    VALUES (p_id, p_event, p_attendee, new_status, ev.registration_seq,
            CASE WHEN new_status = 'confirmed' THEN now() END, expires_at,
            ARRAY[sha256(convert_to(new_token, 'UTF8'))], now())
    RETURNING registrations.created_at INTO created_at;
    IF v_ticket IS NOT NULL THEN
        UPDATE queue_tickets SET used_at = now(), used_by = p_id
        WHERE id = v_ticket AND used_at IS NULL;
    END IF;
    IF new_status <> 'held' OR mailed THEN
        INSERT INTO email_outbox (kind, recipient, payload)
        VALUES (CASE new_status WHEN 'confirmed' THEN 'registration_confirmed'
                                WHEN 'held' THEN 'held' ELSE 'waitlisted' END,
                at.email, eventd_email_payload(at, ev, p_id, new_status, new_token, expires_at));
    END IF;
    IF NOT mailed THEN
        token := new_token;
    END IF;
    outcome := new_status;
END $$;
