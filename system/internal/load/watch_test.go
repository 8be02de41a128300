package load

import (
	"slices"
	"testing"
	"time"
)

// A saga that ends twice, or one that no order of the run made, is
// reported: the bench's check of every saga against its order saw neither,
// so an order made twice, rejected, passed it.
func TestTheTrackerReportsEndsNoOrderExplains(t *testing.T) {
	tr := NewTracker(1, nil)
	tr.Posted(0, "order-1", time.Now())
	tr.SagaEnded("order-1", SagaEnd{State: "REJECTED", Reason: "PAYMENT_DECLINED", Seen: time.Now()})
	tr.SagaEnded("order-1", SagaEnd{State: "COMPLETED", Seen: time.Now()})                              // ended twice
	tr.SagaEnded("order-dup", SagaEnd{State: "REJECTED", Reason: "PAYMENT_DECLINED", Seen: time.Now()}) // no order made it
	if err := tr.Wait(t.Context(), 1, time.Second); err != nil {
		t.Fatalf("Wait: %v", err)
	}
	if again, unposted := tr.Unexpected(); again != 1 || !slices.Equal(unposted, []string{"order-dup"}) {
		t.Errorf("Unexpected: %d ends again, unposted %v; want 1 and [order-dup]", again, unposted)
	}
	if got := tr.Results()[0].End.State; got != "REJECTED" {
		t.Errorf("the saga's end: got %s, want its first, REJECTED", got)
	}
}
