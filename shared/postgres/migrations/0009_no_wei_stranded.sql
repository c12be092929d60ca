-- Sweeper: no wei stranded. Value that reaches a deposit address after its payment expired, the
-- partial value of a payment that expired short, and value paid after a payment was swept are
-- swept too, each in a further sweep round once confirmed. Round 0 is the sweep of a confirmed
-- payment (payments.confirmed); round n > 0 is the n-th reconciliation sweep. A round's
-- transactions are numbered by seq within (payment, round, kind) as before.
--   swept_base_units          what the treasury received from the address, all rounds
--   sweep_rounds              rounds completed (mined, or found nothing left to move)
--   sweep_covered_base_units  the confirmed value the last completed round accounted for; a
--                             payment whose confirmed value exceeds it has value left to sweep
ALTER TABLE sweeps ADD COLUMN round integer NOT NULL DEFAULT 0 CHECK (round >= 0);
ALTER TABLE sweeps DROP CONSTRAINT sweeps_payment_kind_seq_key;
ALTER TABLE sweeps ADD CONSTRAINT sweeps_payment_round_kind_seq_key UNIQUE (payment_id, round, kind, seq);

ALTER TABLE payments ADD COLUMN swept_base_units numeric(78,0) NOT NULL DEFAULT 0 CHECK (swept_base_units >= 0);
ALTER TABLE payments ADD COLUMN sweep_rounds integer NOT NULL DEFAULT 0 CHECK (sweep_rounds >= 0);
ALTER TABLE payments ADD COLUMN sweep_covered_base_units numeric(78,0) NOT NULL DEFAULT 0
    CHECK (sweep_covered_base_units >= 0);
-- Payments swept before this migration: their confirmed value was covered by round 0.
UPDATE payments SET sweep_rounds = 1, sweep_covered_base_units = confirmed_base_units WHERE status = 'swept';
UPDATE payments p SET swept_base_units = s.total FROM (
    SELECT payment_id, sum(value_base_units) AS total FROM sweeps
    WHERE status = 'mined' AND kind IN ('native', 'token') GROUP BY payment_id) s
WHERE p.id = s.payment_id;
-- The reconciliation pass's query: terminal payments with confirmed value not yet covered.
CREATE INDEX payments_value_left ON payments (id)
    WHERE status IN ('expired', 'swept') AND confirmed_base_units > sweep_covered_base_units;
