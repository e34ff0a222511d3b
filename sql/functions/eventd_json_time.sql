-- A moment as the API writes it (eventd.model.format_time): RFC 3339 in UTC
-- with a trailing Z, milliseconds only when the moment has a fraction.
-- For what the database writes in the API's words (webhook bodies).

CREATE OR REPLACE FUNCTION eventd_json_time(p_moment timestamptz) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT to_char(p_moment AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS')
        || CASE WHEN extract(microseconds FROM p_moment)::bigint % 1000000 = 0 THEN ''
                ELSE to_char(p_moment AT TIME ZONE 'UTC', '.MS') END
        || 'Z'
$$;
