-- eventd schema, version 9: the registration flow (holds, offers, manage
-- tokens, history).
--
-- Seats: ``held`` and ``offered`` registrations take a seat like
-- ``confirmed`` ones; the event counts them in ``held_count``, and the
-- invariant becomes confirmed + held <= max_attendees, still a CHECK on the
-- event row every change locks first.
--
-- History: a cancelled or expired registration stays (status, updated_at);
-- at most one *active* registration per attendee and event is a partial
-- unique index instead of the old UNIQUE (event_id, attendee_id). Rows from
-- before this migration keep their meaning: they are all confirmed or
-- waitlisted (cancellations were deleted), and have no manage token: only an
-- admin acts on them.
--
-- Tokens: ``token_hashes`` holds the SHA-256 of every manage token issued
-- for the registration (the one in the 201, and one per email that carries
-- a link: a hash cannot be mailed again, so each such email mints its own).
--
-- The event's settings: ``hold_minutes`` (set from registrations.hold_minutes
-- when the event is made without one), ``offer_minutes`` (0: a freed seat is
-- confirmed at once, as before) and ``confirmation``.

ALTER TABLE events
    ADD COLUMN held_count integer NOT NULL DEFAULT 0 CHECK (held_count >= 0),
    ADD COLUMN hold_minutes double precision NOT NULL DEFAULT 15
        CHECK (hold_minutes BETWEEN 0.05 AND 1440),
    ADD COLUMN offer_minutes double precision NOT NULL DEFAULT 0
        CHECK (offer_minutes = 0 OR offer_minutes BETWEEN 0.05 AND 10080),
    ADD COLUMN confirmation text NOT NULL DEFAULT 'instant'
        CHECK (confirmation IN ('instant', 'email'));
ALTER TABLE events DROP CONSTRAINT events_never_overbooked;
ALTER TABLE events ADD CONSTRAINT events_never_overbooked
    CHECK (confirmed_count >= 0 AND confirmed_count + held_count <= max_attendees);

ALTER TYPE eventd_event_counts ADD ATTRIBUTE held_count integer;

ALTER TABLE registrations DROP CONSTRAINT registrations_status_check;
ALTER TABLE registrations ADD CONSTRAINT registrations_status_check CHECK (
    status IN ('held', 'offered', 'confirmed', 'waitlisted', 'cancelled', 'expired'));
ALTER TABLE registrations
    ADD COLUMN expires_at timestamptz,
    ADD COLUMN token_hashes bytea[] NOT NULL DEFAULT '{}',
    ADD COLUMN updated_at timestamptz,
    ADD COLUMN checked_in_at timestamptz;
UPDATE registrations SET updated_at = coalesce(confirmed_at, created_at);
ALTER TABLE registrations ALTER COLUMN updated_at SET DEFAULT now();
ALTER TABLE registrations ALTER COLUMN updated_at SET NOT NULL;
ALTER TABLE registrations ADD CONSTRAINT registrations_seat_expires
    CHECK (status NOT IN ('held', 'offered') OR expires_at IS NOT NULL);

ALTER TABLE registrations DROP CONSTRAINT registrations_one_per_attendee;
CREATE UNIQUE INDEX registrations_one_active_per_attendee ON registrations (event_id, attendee_id)
    WHERE status IN ('held', 'offered', 'confirmed', 'waitlisted');
-- The holds and offers of an event by expiry: the next one due, and the due ones.
CREATE INDEX registrations_due ON registrations (event_id, expires_at)
    WHERE status IN ('held', 'offered');

ALTER TABLE email_outbox DROP CONSTRAINT email_outbox_kind_check;
ALTER TABLE email_outbox ADD CONSTRAINT email_outbox_kind_check CHECK (kind IN (
    'registration_confirmed', 'waitlisted', 'promoted',
    'registration_cancelled', 'event_cancelled', 'event_changed',
    'reminder', 'held', 'offered', 'expired'));

-- Replaced: eventd_promote by eventd_fill_seats (offers, not only promotions);
-- the first batch entry point, whose callers are gone with the old statuses.
DROP FUNCTION IF EXISTS eventd_promote(uuid);
DROP FUNCTION IF EXISTS eventd_registration_ops(text[], uuid[], uuid[], uuid[], boolean[]);
