package process

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"testing"
)

// Closing the spans, the local state or a client can fail at a stop; an
// operator must see it (the spans are lost, a directory stays on disk),
// not find it at Debug under another name.
func TestWhatFailsToCloseIsLoggedAsAWarning(t *testing.T) {
	var log bytes.Buffer
	closed := 0
	p := &Process{
		Logger: slog.New(slog.NewTextHandler(&log, &slog.HandlerOptions{Level: slog.LevelInfo})),
		closers: []func() error{
			func() error {
				closed++
				return errors.New("send the spans still buffered (they are lost): deadline exceeded")
			},
			func() error { closed++; return nil },
		},
	}
	p.Close()
	if closed != 2 {
		t.Fatalf("%d closers ran, want 2: one that fails stops none after it", closed)
	}
	if got := log.String(); !strings.Contains(got, "level=WARN") || !strings.Contains(got, "spans still buffered") {
		t.Fatalf("log %q, want a warning naming what failed", got)
	}
}
