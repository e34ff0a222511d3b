-- Check in tickets of several events in one statement: p_parts is a JSON
-- array of [event_id, [registration_id, …]], one part per event actor, in
-- the order the events are to be locked (by id, as every batch locks them).
-- Each part is eventd_check_in's, its rows numbered by part (idx, from 1).
-- One statement, so a writer batch of check-ins alone needs no BEGIN and
-- COMMIT around it: one round trip where there were three.

CREATE OR REPLACE FUNCTION eventd_check_in_json(p_parts jsonb)
RETURNS TABLE (
    idx integer, registration_id uuid, outcome text, attendee_id uuid,
    created_at timestamptz, checked_in_at timestamptz,
    event_id uuid, max_attendees integer, confirmed_count integer, waitlist_count integer,
    version bigint, updated_at timestamptz, edited_version bigint, checked_in_count integer,
    held_count integer
) LANGUAGE plpgsql SET enable_seqscan = off SET plan_cache_mode = auto AS $$
DECLARE
    p jsonb;
    n integer;
BEGIN
    FOR p, n IN SELECT t.value, t.ordinality::integer
                FROM jsonb_array_elements(p_parts) WITH ORDINALITY AS t LOOP
        RETURN QUERY
        SELECT n, c.*
        FROM eventd_check_in(
            (p ->> 0)::uuid,
            ARRAY(SELECT jsonb_array_elements_text(p -> 1)::uuid)
        ) AS c;
    END LOOP;
END $$;
