-- eventd schema, version 13: when sales open, and an admission queue.
--
-- ``sales_start_at``: before it, registrations are refused (sales_not_open).
-- ``admission_*``: the event's queue settings, both set or both NULL.
--
-- A queue (admission_queues) is made when an event first gets admission
-- settings. Its tickets join in arrival order (seq). Whoever joined before
-- the opening instant (opens_at: salesStartAt, or the moment the settings
-- were made if that is later) is ranked at opening, all at once, in one
-- statement that orders them by gen_random_uuid() (PostgreSQL's
-- pg_strong_random: the OpenSSL CSPRNG); opened_at is set in the same
-- transaction, so the ranking runs once, whichever daemon gets there first,
-- and never again. Later joiners are ranked at once, in arrival order.
--
-- Admission is a function of time, not a row anyone writes: by instant T,
-- allowance(T) = base + floor(minutes since `since` x rate), from the
-- admission_rates row in force at T (the first is the opening, base 0; a
-- rate PATCH adds a row whose base is the allowance at that moment, so
-- nobody moves back), and admittedThrough(T) = least(allowance(T), ranks
-- given by T). Rank r was admitted at the first instant both held, and its
-- token expires tokenMinutes later. Every daemon computes the same from the
-- same rows and the database's clock; one that was down has nothing to
-- catch up on. A ticket's status (waiting, admitted, used, expired) is read
-- the same way; only its use is written (used_at, once: a guarded UPDATE).
--
-- The token is never stored: token_hash is its SHA-256.

ALTER TABLE events
    ADD COLUMN sales_start_at timestamptz,
    ADD COLUMN admission_rate_per_minute integer
        CHECK (admission_rate_per_minute BETWEEN 1 AND 100000),
    ADD COLUMN admission_token_minutes double precision
        CHECK (admission_token_minutes BETWEEN 0.05 AND 120),
    ADD CONSTRAINT events_admission_whole
        CHECK ((admission_rate_per_minute IS NULL) = (admission_token_minutes IS NULL));

CREATE TABLE admission_queues (
    event_id  uuid PRIMARY KEY REFERENCES events (id) ON DELETE CASCADE,
    -- The opening instant; follows salesStartAt until the queue has opened.
    opens_at  timestamptz NOT NULL,
    -- Set (to opens_at) in the transaction that ranks the pre-sale joiners.
    opened_at timestamptz,
    joined    bigint NOT NULL DEFAULT 0 CHECK (joined >= 0),   -- tickets: seq 1..joined
    ranked    bigint NOT NULL DEFAULT 0 CHECK (ranked >= 0),   -- ranks 1..ranked given
    CONSTRAINT admission_queues_ranked_joined CHECK (ranked <= joined)
);
CREATE INDEX admission_queues_due ON admission_queues (opens_at) WHERE opened_at IS NULL;

CREATE TABLE admission_rates (
    event_id        uuid NOT NULL REFERENCES admission_queues (event_id) ON DELETE CASCADE,
    since           timestamptz NOT NULL,
    base            bigint NOT NULL CHECK (base >= 0),  -- the allowance at `since`
    rate_per_minute integer NOT NULL CHECK (rate_per_minute BETWEEN 1 AND 100000),
    PRIMARY KEY (event_id, since)
);

CREATE TABLE queue_tickets (
    id         uuid PRIMARY KEY,
    event_id   uuid NOT NULL REFERENCES admission_queues (event_id) ON DELETE CASCADE,
    token_hash bytea NOT NULL CHECK (octet_length(token_hash) = 32),
    seq        bigint NOT NULL,            -- arrival order in the event's queue
    rank       bigint CHECK (rank >= 1),   -- NULL until ranked; never changes after
    joined_at  timestamptz NOT NULL,
    ranked_at  timestamptz,                -- the opening, or the join after it
    used_at    timestamptz,                -- the registration it admitted
    used_by    uuid,                       -- that registration's id, when the caller says
    CONSTRAINT queue_tickets_ranked_whole CHECK ((rank IS NULL) = (ranked_at IS NULL)),
    CONSTRAINT queue_tickets_used_ranked CHECK (used_at IS NULL OR rank IS NOT NULL),
    CONSTRAINT queue_tickets_one_seq UNIQUE (event_id, seq)
);
CREATE UNIQUE INDEX queue_tickets_by_token ON queue_tickets (token_hash);
CREATE UNIQUE INDEX queue_tickets_by_rank ON queue_tickets (event_id, rank);
-- Ranks are given in time order: the last rank given by an instant is one probe.
CREATE INDEX queue_tickets_by_ranked_at ON queue_tickets (event_id, ranked_at, rank)
    WHERE rank IS NOT NULL;
CREATE INDEX queue_tickets_used ON queue_tickets (event_id, rank) WHERE used_at IS NOT NULL;
