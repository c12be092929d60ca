-- Scanner: each poll re-reads the deposit addresses of payments created recently on a chain
-- (new payments appear between polls); without this index that read scans all payments.
CREATE INDEX payments_chain_created ON payments (chain_id, created_at);
