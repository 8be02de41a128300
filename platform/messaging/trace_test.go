package messaging_test

import (
	"context"
	"regexp"
	"testing"

	"github.com/kafkasaga/kafkasaga/platform/messaging"
)

var w3cTraceparent = regexp.MustCompile(`^00-[0-9a-f]{32}-[0-9a-f]{16}-01$`)

func TestWithTraceparent(t *testing.T) {
	const valid = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	for _, tc := range []struct {
		name, in string
		keep     bool
	}{
		{name: "valid", in: valid, keep: true},
		{name: "not sampled", in: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00", keep: true},
		{name: "empty", in: ""},
		{name: "upper case", in: "00-0AF7651916CD43DD8448EB211C80319C-B7AD6B7169203331-01"},
		{name: "unknown version", in: "01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"},
		{name: "short trace id", in: "00-0af7651916cd43dd-b7ad6b7169203331-01"},
		{name: "trailing data", in: valid + "-extra"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := messaging.TraceparentFrom(messaging.WithTraceparent(context.Background(), tc.in))
			switch {
			case tc.keep && got != tc.in:
				t.Errorf("TraceparentFrom(WithTraceparent(%q)): got %q, want it kept", tc.in, got)
			case !tc.keep && !w3cTraceparent.MatchString(got):
				t.Errorf("TraceparentFrom(WithTraceparent(%q)): got %q, want a new valid traceparent", tc.in, got)
			}
		})
	}
}

func TestTraceparentFromAContextWithoutOne(t *testing.T) {
	a := messaging.TraceparentFrom(context.Background())
	b := messaging.TraceparentFrom(context.Background())
	if !w3cTraceparent.MatchString(a) || !w3cTraceparent.MatchString(b) {
		t.Fatalf("got %q and %q, want valid traceparents", a, b)
	}
	if a == b {
		t.Errorf("two new traceparents: got %q twice, want distinct trace ids", a)
	}
}
