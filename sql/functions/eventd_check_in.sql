-- Check in tickets of one event. Each registration in p_ids (distinct ids) is
-- let in once: one guarded UPDATE sets checked_in_at where the registration is
-- this event's, confirmed, and not yet checked in, so of any number of scans
-- of one ticket — at any door, through any daemon — exactly one gets
-- 'checked_in'. The others get 'already_checked_in' with the first time; an
-- unknown, cancelled or otherwise unconfirmed registration gets 'not_valid'.
-- The event row is locked first, as every change to an event's registrations
-- locks it; when anyone came in, its checked_in_count rises by that many and
-- its version moves once. Every row carries the event's counts after the
-- change (NULL when the event is gone), in the order of p_ids. Each entry
-- queues its registration.checked_in webhook in the same transaction.

CREATE OR REPLACE FUNCTION eventd_check_in(p_event uuid, p_ids uuid[])
RETURNS TABLE (
    registration_id uuid, outcome text, attendee_id uuid, created_at timestamptz,
    checked_in_at timestamptz,
    event_id uuid, max_attendees integer, confirmed_count integer, waitlist_count integer,
    version bigint, updated_at timestamptz, edited_version bigint, checked_in_count integer,
    held_count integer
) LANGUAGE plpgsql SET enable_seqscan = off SET plan_cache_mode = auto AS $$
DECLARE
    admitted uuid[];
BEGIN
    PERFORM 1 FROM events e WHERE e.id = p_event FOR UPDATE;
    IF NOT FOUND THEN
        RETURN QUERY
        SELECT i.id, 'not_valid'::text, NULL::uuid, NULL::timestamptz, NULL::timestamptz,
               NULL::uuid, NULL::integer, NULL::integer, NULL::integer, NULL::bigint,
               NULL::timestamptz, NULL::bigint, NULL::integer, NULL::integer
        FROM unnest(p_ids) WITH ORDINALITY AS i(id, n) ORDER BY i.n;
        RETURN;
    END IF;
    WITH entered AS (
        UPDATE registrations r SET checked_in_at = now()
        WHERE r.id = ANY (p_ids) AND r.event_id = p_event
          AND r.status = 'confirmed' AND r.checked_in_at IS NULL
        RETURNING r.id
    )
    SELECT coalesce(array_agg(entered.id), '{}') INTO admitted FROM entered;
    IF cardinality(admitted) > 0 THEN
        UPDATE events e SET checked_in_count = e.checked_in_count + cardinality(admitted),
                            version = e.version + 1, updated_at = now()
        WHERE e.id = p_event;
        -- Each entry is announced (registration.checked_in) from the one place
        -- that turns a change into its messages.
        PERFORM eventd_enqueue_webhooks('checked_in', a) FROM unnest(admitted) AS a;
    END IF;
    RETURN QUERY
    SELECT i.id,
           CASE WHEN r.id IS NULL OR r.status <> 'confirmed' THEN 'not_valid'
                WHEN r.id = ANY (admitted) THEN 'checked_in'
                ELSE 'already_checked_in' END,
           r.attendee_id, r.created_at, r.checked_in_at,
           e.id, e.max_attendees, e.confirmed_count, e.waitlist_count, e.version,
           e.updated_at, e.edited_version, e.checked_in_count, e.held_count
    FROM unnest(p_ids) WITH ORDINALITY AS i(id, n)
    JOIN events e ON e.id = p_event
    LEFT JOIN registrations r ON r.id = i.id AND r.event_id = p_event
    ORDER BY i.n;
END $$;
