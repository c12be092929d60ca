-- Outbox relay (shared by api, confirmer, sweeper): a row it cannot publish — rejected by the
-- server, say larger than its max payload — is retried with backoff and, past a bound, parked
-- with its error, so it never holds back the rows after it. A parked row stays for an operator:
-- `UPDATE outbox SET parked_at = NULL, attempts = 0, next_attempt_at = NULL WHERE id = …`
-- puts it back once the cause is fixed.
ALTER TABLE outbox ADD COLUMN attempts integer NOT NULL DEFAULT 0;
ALTER TABLE outbox ADD COLUMN next_attempt_at timestamptz;
ALTER TABLE outbox ADD COLUMN last_error text;
ALTER TABLE outbox ADD COLUMN parked_at timestamptz;
DROP INDEX outbox_unpublished;
CREATE INDEX outbox_unpublished ON outbox (id) WHERE published_at IS NULL AND parked_at IS NULL;
