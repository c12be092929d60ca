package outbox

import "github.com/lib/pq"

func pqInt64Array(v []int64) any { return pq.Array(v) }
