-- eventd schema, version 2: Idempotency-Key.
--
-- One row per key. A request claims its key by inserting the row with a null
-- status (pending), does its work, then stores the response in the same row;
-- a retry with the same key and the same request_hash gets that response
-- again. See eventd/http/idempotency.py for the rules.

CREATE TABLE idempotency_keys (
    key          text PRIMARY KEY CHECK (char_length(key) BETWEEN 1 AND 255),
    -- sha256 of method, path and the (canonical JSON) body: the same key on
    -- another request is refused, never replayed.
    request_hash bytea NOT NULL CHECK (octet_length(request_hash) = 32),
    -- The claim: which request holds the key, and since when. A pending claim
    -- older than the lease belongs to a request that died; a retry takes it over.
    owner        uuid NOT NULL,
    claimed_at   timestamptz NOT NULL DEFAULT now(),
    -- The stored response; status is null while the claim is pending.
    status       integer CHECK (status BETWEEN 100 AND 599),
    headers      jsonb,
    body         bytea,
    created_at   timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT idempotency_keys_stored_whole
        CHECK ((status IS NULL) = (headers IS NULL) AND (status IS NULL) = (body IS NULL))
);
-- Expired keys are swept oldest first.
CREATE INDEX idempotency_keys_by_created ON idempotency_keys (created_at);
