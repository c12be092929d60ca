-- Confirmer: a transfer whose receipt failed (status 0) or whose Transfer log does not match is
-- 'failed', not 'reorged': it never counts, is shown with the payment's transfers, and no
-- payments.reorged is sent for it. Rows marked 'reorged' for that reason before this migration
-- cannot be told apart and stay as they are.
ALTER TABLE payment_transfers DROP CONSTRAINT payment_transfers_status_check;
ALTER TABLE payment_transfers ADD CONSTRAINT payment_transfers_status_check
    CHECK (status IN ('detected', 'confirmed', 'reorged', 'failed'));
