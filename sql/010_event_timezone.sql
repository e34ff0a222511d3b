-- eventd schema, version 10: an event's time zone, and its calendar sequence.
--
-- ``timezone`` is the IANA name people read the event's times in (emails,
-- pages, ``eventd watch``); its times stay UTC. Rows from before this
-- migration are in UTC, which is how their emails showed them.
--
-- ``calendar_sequence`` is the iCalendar SEQUENCE of the event's invitations
-- (RFC 5546): it rises by one each time the event's time or place changes,
-- so a calendar that holds an older invitation takes the new one instead.
-- Not a version: edits of the name or capacity, and registrations, leave it.

ALTER TABLE events
    ADD COLUMN timezone text NOT NULL DEFAULT 'UTC'
        CHECK (char_length(timezone) BETWEEN 1 AND 64),
    ADD COLUMN calendar_sequence integer NOT NULL DEFAULT 0;
