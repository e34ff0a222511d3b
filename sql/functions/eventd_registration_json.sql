-- What the writer calls: one batch of registration operations as one jsonb
-- array, each [kind, registration_id, event_id, attendee_id, waitlist, hold,
-- by_email, admission] with kind 'register', 'cancel', 'confirm' or 'expire'
-- (hold and by_email may be left out: false; admission, the hex of the
-- Admission-Token's SHA-256, may be left out or null: none sent). The driver encodes one document far
-- faster than eight arrays it inspects element by element. Unpacked here and
-- handed to eventd_registration_batch, which does the work and whose rows
-- this answers unchanged.

DROP FUNCTION IF EXISTS eventd_registration_json(jsonb);

CREATE OR REPLACE FUNCTION eventd_registration_json(p_ops jsonb) RETURNS TABLE (
    idx integer, registration_id uuid, outcome text, created_at timestamptz, promoted uuid[],
    token text, expires_at timestamptz, next_expiry timestamptz,
    event_id uuid, max_attendees integer, confirmed_count integer, waitlist_count integer,
    version bigint, updated_at timestamptz, edited_version bigint, held_count integer,
    expired_holds integer, expired_offers integer
) LANGUAGE sql AS $$
    SELECT b.*
    FROM (
        SELECT array_agg(op ->> 0 ORDER BY n) AS kinds,
               array_agg((op ->> 1)::uuid ORDER BY n) AS ids,
               array_agg((op ->> 2)::uuid ORDER BY n) AS events,
               array_agg((op ->> 3)::uuid ORDER BY n) AS attendees,
               array_agg(coalesce((op ->> 4)::boolean, false) ORDER BY n) AS waitlist,
               array_agg(coalesce((op ->> 5)::boolean, false) ORDER BY n) AS hold,
               array_agg(coalesce((op ->> 6)::boolean, false) ORDER BY n) AS by_email,
               array_agg(decode(op ->> 7, 'hex') ORDER BY n) AS admission
        FROM jsonb_array_elements(p_ops) WITH ORDINALITY AS t(op, n)
    ) AS a,
    eventd_registration_batch(a.kinds, a.ids, a.events, a.attendees, a.waitlist, a.hold,
                              a.by_email, a.admission) AS b
$$;
