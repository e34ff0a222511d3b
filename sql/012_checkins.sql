-- eventd schema, version 12: check-in at the door.
--
-- ``registrations.checked_in_at`` is set once, by one guarded statement
-- (eventd_check_in: ``... WHERE status = 'confirmed' AND checked_in_at IS
-- NULL``), so a ticket is let in exactly once however many doors and daemons
-- scan it at the same moment. ``events.checked_in_count`` counts those
-- entries, moved in the same statement's transaction, so an event's JSON
-- carries it without counting rows. It only rises: a registration cancelled
-- after its holder came in does not take the entry back.
--
-- IF NOT EXISTS: the registration flow (009) may have added the column
-- already.

ALTER TABLE registrations ADD COLUMN IF NOT EXISTS checked_in_at timestamptz;
ALTER TABLE events ADD COLUMN IF NOT EXISTS checked_in_count integer NOT NULL DEFAULT 0
    CHECK (checked_in_count >= 0);
