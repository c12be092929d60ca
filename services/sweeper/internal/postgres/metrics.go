package postgres

import "context"

// PendingReplacements counts, per chain, the re-priced sweep transactions still waiting for a
// receipt: versions signed or broadcast whose nonce has an earlier version marked replaced
// (a transaction that needed a higher fee and has not landed yet).
func (s *Store) PendingReplacements(ctx context.Context) (map[int64]int64, error) {
	var rows []struct {
		ChainID int64 `db:"chain_id"`
		N       int64 `db:"n"`
	}
	if err := s.db.SelectContext(ctx, &rows, `SELECT w.chain_id, count(*) AS n FROM sweeps w
		WHERE w.status IN ('signed', 'broadcast') AND EXISTS (SELECT 1 FROM sweeps o
			WHERE o.chain_id = w.chain_id AND o.from_address = w.from_address AND o.nonce = w.nonce AND o.status = 'replaced')
		GROUP BY w.chain_id`); err != nil {
		return nil, err
	}
	out := make(map[int64]int64, len(rows))
	for _, r := range rows {
		out[r.ChainID] = r.N
	}
	return out, nil
}
