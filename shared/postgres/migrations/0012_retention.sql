-- Retention (issue 12): rows older than RETENTION_AGE are pruned in small batches, oldest first
-- (shared/retention). Each pruned table needs its time column indexed, or every batch would scan
-- the whole table: webhook_attempts (the webhook sender prunes it), published outbox rows and
-- payment_status_changes (the confirmer prunes both). Unpublished and parked outbox rows are
-- never pruned, so the outbox index covers published rows only.
CREATE INDEX webhook_attempts_attempted ON webhook_attempts (attempted_at);
CREATE INDEX outbox_published ON outbox (published_at) WHERE published_at IS NOT NULL;
CREATE INDEX payment_status_changes_created ON payment_status_changes (created_at);
