-- Sweeper: re-priced sweeps. A sweep transaction without a receipt after SWEEP_REPRICE_AFTER is
-- replaced by one with the same nonce and higher fees, recorded before broadcast like the first.
-- Every signed version stays a row: seq numbers a payment's transactions of one kind (0 the
-- first; a replacement, or a further gas top-up for a re-priced token transfer, takes the next),
-- so two handlers cannot record the same step twice. Versions of one transaction share kind,
-- from_address and nonce. A version that a later one superseded is 'replaced' (it may still be
-- mined: whichever receipt appears wins); once one version is mined (or reverted), the earlier
-- versions are 'replaced' and the later ones 'dropped'. broadcast_at is the first broadcast of a
-- version, from which the re-pricing delay runs (across restarts too).
ALTER TABLE sweeps ADD COLUMN seq integer NOT NULL DEFAULT 0 CHECK (seq >= 0);
ALTER TABLE sweeps ADD COLUMN broadcast_at timestamptz;
UPDATE sweeps SET broadcast_at = updated_at WHERE status <> 'signed';
ALTER TABLE sweeps DROP CONSTRAINT sweeps_payment_id_kind_key;
ALTER TABLE sweeps ADD CONSTRAINT sweeps_payment_kind_seq_key UNIQUE (payment_id, kind, seq);
ALTER TABLE sweeps DROP CONSTRAINT sweeps_status_check;
ALTER TABLE sweeps ADD CONSTRAINT sweeps_status_check
    CHECK (status IN ('signed', 'broadcast', 'mined', 'failed', 'replaced', 'dropped'));
-- A nonce is used once: at most one version of it is mined (or reverted).
CREATE UNIQUE INDEX sweeps_nonce_used ON sweeps (chain_id, from_address, nonce) WHERE status IN ('mined', 'failed');
