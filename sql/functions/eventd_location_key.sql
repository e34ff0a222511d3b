-- The key an event's location is searched and grouped by: trimmed, runs of
-- whitespace made one space, lower case. events.location_key stores it (a
-- generated column, indexed by events_by_location), so it must stay
-- IMMUTABLE. A row keeps the key it was written with: a change here needs a
-- numbered migration that rewrites the stored keys too (an UPDATE of every
-- event recomputes them).

CREATE OR REPLACE FUNCTION eventd_location_key(location text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN lower(regexp_replace(regexp_replace(location, '^\s+|\s+$', '', 'g'), '\s+', ' ', 'g'));
