-- The payment pipeline (issue 3). Owners: api = merchants, api_keys, payments (insert, metadata),
-- outbox; scanner = chain_cursors, chain_blocks, payment_transfers (insert on detection);
-- confirmer = payments.status and the *_base_units totals, payment_transfers.status,
-- payment_status_changes; sweeper = sweeps, tx_nonces.

-- API keys are shown once and stored as SHA-256; prefix lets a merchant tell keys apart.
CREATE TABLE api_keys (
    id           text PRIMARY KEY,
    merchant_id  text NOT NULL REFERENCES merchants(id),
    key_hash     bytea NOT NULL UNIQUE,
    prefix       text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    revoked_at   timestamptz
);

-- BIP-32 child index of each deposit address (m/44'/60'/0'/0/i): nextval never hands out the
-- same index twice, even to concurrent requests or after a rollback.
CREATE SEQUENCE deposit_address_index AS bigint MINVALUE 0 START 0;

CREATE TABLE payments (
    id                    text PRIMARY KEY,
    merchant_id           text NOT NULL REFERENCES merchants(id),
    status                text NOT NULL DEFAULT 'pending'
                          CHECK (status IN ('pending', 'detected', 'confirmed', 'swept', 'expired')),
    chain_id              bigint NOT NULL,
    token                 text NOT NULL,                 -- symbol from CHAINS_FILE, ETH for native
    token_contract        text,                          -- lower-case 0x address, NULL for native
    decimals              integer NOT NULL CHECK (decimals BETWEEN 0 AND 77),
    address               text NOT NULL UNIQUE,          -- lower-case 0x deposit address
    address_index         bigint NOT NULL UNIQUE,
    amount_base_units     numeric(78,0) NOT NULL CHECK (amount_base_units > 0),
    received_base_units   numeric(78,0) NOT NULL DEFAULT 0,   -- detected, not reorged
    confirmed_base_units  numeric(78,0) NOT NULL DEFAULT 0,   -- with enough confirmations
    metadata              jsonb NOT NULL DEFAULT '{}',
    idempotency_key       text,
    request_hash          bytea,                         -- to refuse a reused key with another body
    expires_at            timestamptz NOT NULL,
    created_at            timestamptz NOT NULL DEFAULT now(),
    updated_at            timestamptz NOT NULL DEFAULT now(),
    UNIQUE (merchant_id, idempotency_key)
);
CREATE INDEX payments_merchant_created ON payments (merchant_id, created_at DESC, id DESC);
CREATE INDEX payments_open ON payments (chain_id, status) WHERE status IN ('pending', 'detected');
CREATE INDEX payments_expiry ON payments (expires_at) WHERE status = 'pending';

-- One row per transfer to a deposit address. log_index is -1 for a native transfer (the
-- transaction's value). A transfer that arrives after expiry is still recorded.
CREATE TABLE payment_transfers (
    chain_id          bigint NOT NULL,
    tx_hash           text NOT NULL,
    log_index         integer NOT NULL,
    payment_id        text NOT NULL REFERENCES payments(id),
    token_contract    text,
    value_base_units  numeric(78,0) NOT NULL CHECK (value_base_units >= 0),
    block_number      bigint NOT NULL,
    block_hash        text NOT NULL,
    status            text NOT NULL DEFAULT 'detected' CHECK (status IN ('detected', 'confirmed', 'reorged')),
    detected_at       timestamptz NOT NULL DEFAULT now(),
    confirmed_at      timestamptz,
    reorged_at        timestamptz,
    PRIMARY KEY (chain_id, tx_hash, log_index)
);
CREATE INDEX payment_transfers_payment ON payment_transfers (payment_id);
CREATE INDEX payment_transfers_open ON payment_transfers (chain_id, block_number) WHERE status = 'detected';

-- Audit: every status change, written in the same transaction as the guarded UPDATE.
CREATE TABLE payment_status_changes (
    id           bigserial PRIMARY KEY,
    payment_id   text NOT NULL REFERENCES payments(id),
    from_status  text NOT NULL,
    to_status    text NOT NULL,
    reason       text NOT NULL,
    event_id     text,
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX payment_status_changes_payment ON payment_status_changes (payment_id, id);

-- Transactional outbox: a service writes the event in the same transaction as the state change;
-- a relay publishes it with its Nats-Msg-Id and marks it. A crash between commit and publish
-- leaves the row, which is published on restart (and deduplicated by JetStream if it had been).
CREATE TABLE outbox (
    id            bigserial PRIMARY KEY,
    subject       text NOT NULL,
    msg_id        text NOT NULL UNIQUE,
    headers       jsonb NOT NULL DEFAULT '{}',
    payload       bytea NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    published_at  timestamptz
);
CREATE INDEX outbox_unpublished ON outbox (id) WHERE published_at IS NULL;

-- Scanner: how far each chain is scanned and the recent canonical blocks, to detect reorgs.
CREATE TABLE chain_cursors (
    chain_id      bigint PRIMARY KEY,
    block_number  bigint NOT NULL,
    block_hash    text NOT NULL,
    updated_at    timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE chain_blocks (
    chain_id     bigint NOT NULL,
    number       bigint NOT NULL,
    hash         text NOT NULL,
    parent_hash  text NOT NULL,
    PRIMARY KEY (chain_id, number)
);

-- Sweeper: every transaction it signs is recorded before broadcast, so a crash or a redelivery
-- rebroadcasts the same signed transaction instead of signing a second one.
CREATE TABLE sweeps (
    id            text PRIMARY KEY,
    payment_id    text NOT NULL REFERENCES payments(id),
    kind          text NOT NULL CHECK (kind IN ('native', 'gas_topup', 'token')),
    chain_id      bigint NOT NULL,
    from_address  text NOT NULL,
    to_address    text NOT NULL,
    nonce         bigint NOT NULL,
    value_base_units numeric(78,0) NOT NULL,
    tx_hash       text NOT NULL UNIQUE,
    raw_tx        bytea NOT NULL,
    status        text NOT NULL DEFAULT 'signed' CHECK (status IN ('signed', 'broadcast', 'mined', 'failed')),
    error         text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    UNIQUE (payment_id, kind)
);
CREATE TABLE tx_nonces (
    chain_id    bigint NOT NULL,
    address     text NOT NULL,
    next_nonce  bigint NOT NULL,
    PRIMARY KEY (chain_id, address)
);
