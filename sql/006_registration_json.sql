-- eventd schema, version 6: a batch of registrations arrives as one JSON document.
--
-- eventd_registration_batch takes five arrays, one element per operation. The
-- daemon's driver looks at every element of each before encoding it (is it a
-- nested array?), which cost more than the rest of the statement's encoding.
-- This takes the batch as one jsonb array of operations, each
-- [kind, registration_id, event_id, attendee_id, waitlist], and answers
-- exactly as eventd_registration_batch does, which does the work.

CREATE FUNCTION eventd_registration_json(p_ops jsonb) RETURNS TABLE (
    idx integer, registration_id uuid, outcome text, created_at timestamptz, promoted uuid[],
    event_id uuid, max_attendees integer, confirmed_count integer, waitlist_count integer,
    version bigint, updated_at timestamptz, edited_version bigint
) LANGUAGE sql AS $$
    SELECT b.*
    FROM (
        SELECT array_agg(op ->> 0 ORDER BY n) AS kinds,
               array_agg((op ->> 1)::uuid ORDER BY n) AS ids,
               array_agg((op ->> 2)::uuid ORDER BY n) AS events,
               array_agg((op ->> 3)::uuid ORDER BY n) AS attendees,
               array_agg((op ->> 4)::boolean ORDER BY n) AS waitlist
        FROM jsonb_array_elements(p_ops) WITH ORDINALITY AS t(op, n)
    ) AS a,
    eventd_registration_batch(a.kinds, a.ids, a.events, a.attendees, a.waitlist) AS b
$$;
