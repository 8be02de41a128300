package registry

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
)

// A change whose plan panics (the server answers 500 and goes on) holds
// no lock afterwards: the next change is made. It held the read lock, and
// the next write waited for it forever, and every request after it.
func TestAPlanThatPanicsLeavesTheRegistryServing(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	r, err := New(t.Context(), Config{Brokers: c.ListenAddrs()}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	func() {
		defer func() { _ = recover() }()
		_ = r.change(t.Context(), func(*state) ([]record, error) { panic("a plan that panics") })
	}()
	done := make(chan error, 1)
	go func() {
		done <- r.change(context.Background(), func(st *state) ([]record, error) { return st.setLevel(nil, "FULL") })
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("the next change: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the next change did not end within 10s: a lock is still held")
	}
}
