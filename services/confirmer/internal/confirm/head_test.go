package confirm

import (
	"errors"
	"testing"

	"github.com/ctrip-pay/pipeline/shared/fault"
)

func TestOnlyTheNewestFailedHeadIsRetried(t *testing.T) {
	c := &Confirmer{latest: map[int64]uint64{}}
	c.observeHead(1, 10)
	c.observeHead(2, 50)
	cases := []struct {
		chain  int64
		number uint64
		want   fault.Kind
	}{
		{1, 10, fault.KindTransient},
		{1, 9, fault.KindConflict},
		{2, 10, fault.KindConflict},
		{3, 1, fault.KindTransient},
	}
	for _, tc := range cases {
		err := c.headFailed(chainHead(tc.chain, tc.number), errors.New("rpc down"))
		if fault.KindOf(err) != tc.want {
			t.Errorf("chain %d head %d: %v, want kind %d", tc.chain, tc.number, err, tc.want)
		}
	}
}
