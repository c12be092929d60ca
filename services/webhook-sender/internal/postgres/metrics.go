package postgres

import "context"

// UnreplayedDeadLetters is how many dead letters no one has replayed yet: the DLQ's depth as
// an operator sees it (a replayed one stays in the table and on the DLQ stream for the record).
func (s *Store) UnreplayedDeadLetters(ctx context.Context) (int64, error) {
	var n int64
	err := s.db.GetContext(ctx, &n, `SELECT count(*) FROM webhook_dead_letters WHERE replay_count = 0`)
	return n, err
}
