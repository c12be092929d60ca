-- Confirmer (issue 3). A head can find a transfer's block orphaned before the scanner's
-- chain.<id>.reorg arrives: the transfer is marked reorged at once, and the reorg message that
-- covers it reports it in payments.reorged. reorg_reported_at records that it was reported, so
-- a transfer is reported once however the head and reorg messages interleave or are
-- redelivered.
ALTER TABLE payment_transfers ADD COLUMN reorg_reported_at timestamptz;
UPDATE payment_transfers SET reorg_reported_at = reorged_at WHERE status = 'reorged';

-- A reorg looks at the chain's transfers above the common ancestor, confirmed ones included.
CREATE INDEX payment_transfers_chain_block ON payment_transfers (chain_id, block_number);

-- The W3C trace context (traceparent, tracestate) of a payment's first detection, kept by the
-- confirmer: payments.confirmed, .expired and .reorged continue the trace that the scanner's
-- detection started, so one trace follows the payment.
ALTER TABLE payments ADD COLUMN trace_context jsonb;
