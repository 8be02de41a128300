package process

import (
	"bytes"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kafkasaga/kafkasaga/platform/config"
	"github.com/kafkasaga/kafkasaga/platform/messaging"
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

// A registry that takes requests and never answers holds a start's 64
// workers, each decoding a record of a schema not cached yet, one timeout
// at most: srclient let 16 through at a time, and the last waited four
// timeouts, 20 s, past the transaction's 10.
func TestARegistryThatDoesNotAnswerHoldsEachWorkerOneTimeout(t *testing.T) {
	release := make(chan struct{})
	registry := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	defer registry.Close()
	defer close(release)
	client := registryClient(config.Kafka{SchemaRegistryURL: registry.URL})
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		longest time.Duration
	)
	for id := range messaging.Workers {
		wg.Go(func() {
			start := time.Now()
			if _, err := client.GetSchema(id + 1); err == nil {
				t.Errorf("schema %d: got one from a registry that does not answer", id+1)
			}
			mu.Lock()
			longest = max(longest, time.Since(start))
			mu.Unlock()
		})
	}
	wg.Wait()
	if longest > 2*registryTimeout {
		t.Errorf("the longest of %d requests took %s, want at most %s, a timeout and some", messaging.Workers, longest, 2*registryTimeout)
	}
}
