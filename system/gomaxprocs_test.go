package system

import "testing"

// The whole system runs with one P more than the runtime chose, unless
// GOMAXPROCS says how many.
func TestGomaxprocs(t *testing.T) {
	for _, tt := range []struct {
		chosen int
		env    string
		want   int
	}{
		{chosen: 2, want: 3},
		{chosen: 1, want: 2},
		{chosen: 2, env: "2", want: 0},
		{chosen: 4, env: "1", want: 0},
	} {
		if got := gomaxprocs(tt.chosen, tt.env); got != tt.want {
			t.Errorf("gomaxprocs(%d, %q): got %d, want %d", tt.chosen, tt.env, got, tt.want)
		}
	}
}
