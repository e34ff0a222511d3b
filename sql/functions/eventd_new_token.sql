-- A new manage token: 32 bytes from two version-4 UUIDs (244 bits from the
-- server's strong random source, pg_strong_random), base64url without
-- padding. Stored only as sha256(token) in registrations.token_hashes; the
-- token itself goes to the client once (the 201) or into one email.

CREATE OR REPLACE FUNCTION eventd_new_token() RETURNS text
LANGUAGE sql VOLATILE AS $$
    SELECT rtrim(translate(encode(uuid_send(gen_random_uuid()) || uuid_send(gen_random_uuid()),
                                  'base64'), '+/', '-_'), '=')
$$;
