package console

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// TestASubscriberThatLagsIsDropped publishes to two subscribers, one that
// reads between rounds and one that never reads: publishing never waits,
// the one that never reads is dropped (its channel closed) once its buffer
// is full, and the other gets every event.
func TestASubscriberThatLagsIsDropped(t *testing.T) {
	h := newHub()
	lagging, _ := h.subscribe()
	reading, leave := h.subscribe()
	defer leave()
	read := 0
	for range 3 {
		for range subscriberBuffer {
			h.publish([]byte("{}")) // would block here if a subscriber could hold it up
		}
		for range subscriberBuffer {
			if _, ok := <-reading; !ok {
				t.Fatalf("the reading subscriber was dropped after %d events", read)
			}
			read++
		}
	}
	n := 0
	for range lagging {
		n++
	}
	if n != subscriberBuffer {
		t.Errorf("the lagging subscriber got %d events before it was dropped, want its buffer's %d", n, subscriberBuffer)
	}
	h.close()
	if _, open := <-reading; open {
		t.Error("after close: the reading subscriber's channel is open, want closed")
	}
	if late, _ := h.subscribe(); late != nil {
		t.Error("a subscriber after close: got a channel, want none")
	}
}

// TestServeEventsWritesEachEventAndEndsWithTheHub streams over HTTP: each
// published event arrives as "event: saga" and its data, and the stream
// ends when the hub closes.
func TestServeEventsWritesEachEventAndEndsWithTheHub(t *testing.T) {
	h := newHub()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { serveEvents(w, r, h, "saga") }))
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("Content-Type: got %q, want text/event-stream", ct)
	}
	lines := bufio.NewScanner(resp.Body)
	next := func() string {
		t.Helper()
		if !lines.Scan() {
			t.Fatalf("stream ended: %v", lines.Err())
		}
		return lines.Text()
	}
	if got := next(); got != "retry: 1000" {
		t.Fatalf("first line: got %q, want the retry delay", got)
	}
	next()
	// The handler has subscribed once its first lines are out.
	h.publish([]byte(`{"sagaId":"a"}`))
	h.publish([]byte(`{"sagaId":"b"}`))
	var got []string
	for range 6 {
		got = append(got, next())
	}
	want := []string{"event: saga", `data: {"sagaId":"a"}`, "", "event: saga", `data: {"sagaId":"b"}`, ""}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("events: got %q, want %q", got, want)
	}
	h.close()
	if lines.Scan() {
		t.Errorf("after the hub closed: got %q, want the stream to end", lines.Text())
	}
}

// TestTheStreamsAreRefusedUntilTheIndexCaughtUp opens both streams of a
// ready process whose console is still reading its topics: they are
// refused with a 503 as the lists are, since a stream open meanwhile sent
// nothing of what was read, and a page that reconnected then showed its
// rows stale for good; refused, it retries and reads the list again once
// the stream opens. Once caught up they open, and once the console has
// stopped they are refused again, rather than open and end at once.
func TestTheStreamsAreRefusedUntilTheIndexCaughtUp(t *testing.T) {
	c := newApplying(t, sagas{})
	srv := httptest.NewServer(handler(t, c))
	defer srv.Close()
	get := func(when string, want int) {
		t.Helper()
		for _, path := range []string{"/api/sagas/stream", "/api/deadletters/stream"} {
			ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+path, nil)
			resp, err := srv.Client().Do(req)
			if err != nil {
				cancel()
				t.Fatalf("%s, %s: %v", when, path, err)
			}
			var body struct{ Error string }
			switch {
			case resp.StatusCode != want:
				t.Errorf("%s, %s: got %d %s, want %d", when, path, resp.StatusCode, resp.Header.Get("Content-Type"), want)
			case want == http.StatusServiceUnavailable:
				if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || body.Error == "" || resp.Header.Get("Retry-After") == "" {
					t.Errorf("%s, %s: got 503 with Retry-After %q and error %q (%v), want Retry-After and a JSON error",
						when, path, resp.Header.Get("Retry-After"), body.Error, err)
				}
			}
			resp.Body.Close()
			cancel()
		}
	}
	get("loading", http.StatusServiceUnavailable)
	c.caughtUp.Store(true)
	get("caught up", http.StatusOK)
	c.sagaEvents.close()
	c.deadEvents.close()
	get("stopped", http.StatusServiceUnavailable)
}

// A HEAD of a stream answers its headers and ends: streaming on, it held
// the client's connection, and the next request on it got no answer.
func TestAHeadOfAStreamEnds(t *testing.T) {
	c := newApplying(t, sagas{})
	c.caughtUp.Store(true)
	srv := httptest.NewServer(handler(t, c))
	defer srv.Close()
	defer c.deadEvents.close() // so that a stream still held ends
	defer c.sagaEvents.close()
	for _, path := range []string{"/api/sagas/stream", "/api/deadletters/stream", "/api/sagas/stream"} { // one connection
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		req, _ := http.NewRequestWithContext(ctx, http.MethodHead, srv.URL+path, nil)
		resp, err := srv.Client().Do(req)
		cancel()
		if err != nil {
			t.Fatalf("HEAD %s: %v", path, err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
			t.Errorf("HEAD %s: got %d %s, want 200 text/event-stream", path, resp.StatusCode, resp.Header.Get("Content-Type"))
		}
	}
}
