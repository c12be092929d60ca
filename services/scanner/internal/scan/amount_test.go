package scan

import "testing"

func TestSubFloorNeverNegative(t *testing.T) {
	cases := []struct{ a, b, want uint64 }{{10, 3, 7}, {3, 3, 0}, {2, 3, 0}, {0, 12, 0}}
	for _, c := range cases {
		if got := subFloor(c.a, c.b); got != c.want {
			t.Errorf("subFloor(%d, %d) = %d, want %d", c.a, c.b, got, c.want)
		}
	}
}
