-- Merchants own endpoints and payments. The api service owns this table (issue 3 adds API keys);
-- the webhook sender only reads it.
CREATE TABLE merchants (
    id          text PRIMARY KEY,
    name        text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- Webhook endpoints. merchant_id is NULL only for the default endpoint configured with
-- WEBHOOK_URL / WEBHOOK_SECRET, which receives every merchant's events (the seed's behaviour).
-- secret is needed in clear to sign; previous_secret keeps signing during rotation until
-- previous_secret_expires_at.
CREATE TABLE webhook_endpoints (
    id                          text PRIMARY KEY,
    merchant_id                 text REFERENCES merchants(id),
    url                         text NOT NULL,
    secret                      text NOT NULL,
    previous_secret             text,
    previous_secret_expires_at  timestamptz,
    event_types                 text[] NOT NULL DEFAULT '{}',  -- empty = every event type
    legacy_signature            boolean NOT NULL DEFAULT false,
    enabled                     boolean NOT NULL DEFAULT true,
    disabled_reason             text,
    disabled_at                 timestamptz,
    deleted_at                  timestamptz,
    created_at                  timestamptz NOT NULL DEFAULT now(),
    updated_at                  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX webhook_endpoints_merchant ON webhook_endpoints (merchant_id) WHERE deleted_at IS NULL;

-- Every delivery attempt, successful or not. Owned by the webhook sender.
CREATE TABLE webhook_attempts (
    id             bigserial PRIMARY KEY,
    event_id       text NOT NULL,
    event_type     text NOT NULL,
    payment_id     text,
    endpoint_id    text NOT NULL,
    stream_seq     bigint NOT NULL,
    attempt        integer NOT NULL,
    status_code    integer,           -- NULL when no response (timeout, refused, SSRF block)
    latency_ms     double precision NOT NULL,
    error          text,
    response_body  text,              -- first 4 KiB
    delivered      boolean NOT NULL,
    attempted_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX webhook_attempts_event ON webhook_attempts (event_id, endpoint_id);
CREATE INDEX webhook_attempts_payment ON webhook_attempts (payment_id) WHERE payment_id IS NOT NULL;

-- Exhausted or terminated deliveries, one row per original WEBHOOKS message.
CREATE TABLE webhook_dead_letters (
    id             text PRIMARY KEY,
    origin_stream  text NOT NULL,
    origin_seq     bigint NOT NULL,
    origin_subject text NOT NULL,
    endpoint_id    text NOT NULL,
    event_id       text,
    event_type     text,
    payment_id     text,
    merchant_id    text,
    reason         text NOT NULL,
    deliveries     integer NOT NULL,
    last_error     text,
    headers        jsonb NOT NULL DEFAULT '{}',
    body           bytea NOT NULL,
    dlq_seq        bigint,            -- sequence of the copy on dlq.webhooks.<endpoint_id>
    published_at   timestamptz,
    replay_count   integer NOT NULL DEFAULT 0,
    last_replayed_at timestamptz,
    created_at     timestamptz NOT NULL DEFAULT now(),
    UNIQUE (origin_stream, origin_seq)
);
CREATE INDEX webhook_dead_letters_merchant ON webhook_dead_letters (merchant_id, created_at DESC);
