-- The api reads events back from the outbox, which keeps every event it published with its
-- payload (until retention prunes it, migration 0012): GET /v1/payments/{id}/events lists a
-- payment's events, POST /v1/endpoints/{id}/replay resends a merchant's events since a time.
-- Both select by the event's owner, which outbox.Add copies from the envelope
-- (data.merchant_id, data.payment_id) on insert; events without them keep NULL.
ALTER TABLE outbox ADD COLUMN merchant_id text;
ALTER TABLE outbox ADD COLUMN payment_id text;

-- Rows written before: the owner read from the payload, NULL for one that is not an envelope
-- (which must not stop the migration).
CREATE FUNCTION pg_temp.outbox_owner(payload bytea, field text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    RETURN convert_from(payload, 'UTF8')::jsonb #>> ARRAY['data', field];
EXCEPTION WHEN others THEN
    RETURN NULL;
END $$;
UPDATE outbox SET merchant_id = pg_temp.outbox_owner(payload, 'merchant_id'),
                  payment_id  = pg_temp.outbox_owner(payload, 'payment_id');
DROP FUNCTION pg_temp.outbox_owner(bytea, text);

CREATE INDEX outbox_payment ON outbox (payment_id, id) WHERE payment_id IS NOT NULL;
CREATE INDEX outbox_merchant_created ON outbox (merchant_id, created_at, id) WHERE merchant_id IS NOT NULL;
