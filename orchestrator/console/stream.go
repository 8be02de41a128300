package console

import (
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/kafkasaga/kafkasaga/platform/httpserver"
)

// keepAlive is how often a stream with nothing to say sends a comment, so
// proxies and browsers keep it open.
const keepAlive = 15 * time.Second

// writeTimeout bounds each write to a stream: a client that stopped
// reading (its TCP window full) is cut rather than hold a goroutine.
const writeTimeout = 10 * time.Second

// subscriberBuffer is how many events a stream may lag behind. One that
// lags more is closed rather than let it hold up the index; its client
// reconnects (EventSource does by itself) and reads the pages again.
const subscriberBuffer = 256

// hub hands every event to the streams open at the time.
type hub struct {
	mu     sync.Mutex
	subs   map[chan []byte]struct{}
	closed bool
}

func newHub() *hub { return &hub{subs: map[chan []byte]struct{}{}} }

// subscribe returns a channel of the events from now on, closed when the
// subscriber lags too far or the hub closes, and how to leave; nil if the
// hub is closed.
func (h *hub) subscribe() (<-chan []byte, func()) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil, func() {}
	}
	ch := make(chan []byte, subscriberBuffer)
	h.subs[ch] = struct{}{}
	return ch, func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		if _, ok := h.subs[ch]; ok {
			delete(h.subs, ch)
			close(ch)
		}
	}
}

// listened reports whether a stream is open: if none is, an event need not
// be made.
func (h *hub) listened() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.subs) > 0
}

// publish sends data to every subscriber without waiting: one whose
// buffer is full is dropped.
func (h *hub) publish(data []byte) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for ch := range h.subs {
		select {
		case ch <- data:
		default:
			delete(h.subs, ch)
			close(ch)
		}
	}
}

// close ends every stream, and those opened later at once.
func (h *hub) close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.closed = true
	for ch := range h.subs {
		delete(h.subs, ch)
		close(ch)
	}
}

// serveEvents streams h's events to w as Server-Sent Events named event,
// one goroutine (the request's) per stream, until the client leaves or the
// stream is closed.
func serveEvents(w http.ResponseWriter, r *http.Request, h *hub, event string) {
	events, leave := h.subscribe()
	defer leave()
	if events == nil {
		// The console has stopped. Refused, as while it starts, the page
		// retries with a growing wait, and reads the list again once a
		// stream opens, rather than reconnect every second to one that
		// ends at once.
		httpserver.WriteUnavailable(w, "console stopped")
		return
	}
	rc := http.NewResponseController(w)
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.Header().Set("X-Accel-Buffering", "no") // nginx: do not hold events back
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodHead { // the headers alone: a stream would hold the connection
		return
	}
	write := func(format string, args ...any) bool {
		_ = rc.SetWriteDeadline(time.Now().Add(writeTimeout)) // where the server allows it
		_, err := fmt.Fprintf(w, format, args...)
		return err == nil && rc.Flush() == nil
	}
	// A client that lost its stream reconnects after a second.
	if !write("retry: 1000\n\n") {
		return
	}
	tick := time.NewTicker(keepAlive)
	defer tick.Stop()
	for {
		ok := true
		select {
		case <-r.Context().Done():
			return
		case data, open := <-events:
			ok = open && write("event: %s\ndata: %s\n\n", event, data)
		case <-tick.C:
			ok = write(": keep-alive\n\n")
		}
		if !ok {
			return
		}
	}
}
