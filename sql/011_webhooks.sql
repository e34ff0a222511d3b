-- eventd schema, version 11: webhooks.
--
-- An endpoint is a URL, the types of change it wants (or '*'), and the
-- secret its messages are signed with (Standard Webhooks, ``whsec_…``;
-- kept as it is: signing needs it, so it cannot be a hash). A deliverer
-- holds an endpoint's lease (``claimed_until``) while it sends its messages,
-- so each endpoint's messages go one at a time, in order, whichever daemon
-- sends them.
--
-- A delivery is one message to one endpoint, written in the transaction of
-- the change that causes it (sql/functions/eventd_webhook_fanout.sql).
-- ``body`` is exactly the JSON that is signed and sent, fixed when the
-- change commits, so every attempt sends the same bytes under the same
-- ``webhook-id`` (the row's id). ``seq`` is the order of the changes.
-- Pending: neither delivered nor given up (after webhooks.retry_hours).

CREATE TABLE webhook_endpoints (
    id              uuid PRIMARY KEY,
    url             text NOT NULL CHECK (char_length(url) BETWEEN 1 AND 2000),
    types           text[] NOT NULL CHECK (cardinality(types) >= 1),
    description     text NOT NULL DEFAULT '' CHECK (char_length(description) <= 500),
    secret          text NOT NULL,
    enabled         boolean NOT NULL DEFAULT true,
    -- Why it was disabled, when a delivery did it (the receiver answered 410).
    disabled_reason text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    claimed_until   timestamptz  -- a deliverer is sending its messages until then
);
CREATE INDEX webhook_endpoints_by_created ON webhook_endpoints (created_at, id);
-- What a change looks up: the enabled endpoints (a handful), by index.
CREATE INDEX webhook_endpoints_enabled ON webhook_endpoints (id) WHERE enabled;

CREATE TABLE webhook_deliveries (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    seq             bigint GENERATED ALWAYS AS IDENTITY,
    endpoint_id     uuid NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
    type            text NOT NULL,
    body            text NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    last_status     integer,  -- the receiver's last HTTP status, if it answered
    last_error      text,     -- why the last attempt failed
    delivered_at    timestamptz,
    given_up_at     timestamptz
);
-- An endpoint's next message, and its page of deliveries (newest first).
CREATE INDEX webhook_deliveries_by_endpoint ON webhook_deliveries (endpoint_id, seq);
CREATE INDEX webhook_deliveries_pending ON webhook_deliveries (endpoint_id, seq)
    WHERE delivered_at IS NULL AND given_up_at IS NULL;
