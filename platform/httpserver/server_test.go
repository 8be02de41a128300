package httpserver_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kafkasaga/kafkasaga/platform/httpserver"
)

// serve runs s on a free port until the test ends and returns its base URL.
func serve(t *testing.T, s *httpserver.Server) string {
	t.Helper()
	return serveOn(t, s, listen(t))
}

func listen(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	return ln
}

// serveOn runs s on ln until the test ends and returns its base URL.
func serveOn(t *testing.T, s *httpserver.Server, ln net.Listener) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Serve after cancel: got %v, want nil", err)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("Serve did not return within 10s of cancel")
		}
	})
	return "http://" + ln.Addr().String()
}

// serveStopping runs s on ln until the test calls stop, which returns
// Serve's error, or fails the test if Serve has not returned within 10 s.
func serveStopping(t *testing.T, s *httpserver.Server, ln net.Listener) (stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, ln) }()
	return func() error {
		t.Helper()
		cancel()
		select {
		case err := <-done:
			return err
		case <-time.After(10 * time.Second):
			t.Fatal("Serve did not return within 10s of cancel")
			return nil
		}
	}
}

func newServer(t *testing.T, cfg httpserver.Config) *httpserver.Server {
	t.Helper()
	if cfg.Addr == "" {
		cfg.Addr = "127.0.0.1:0"
	}
	s, err := httpserver.New(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("httpserver.New: %v", err)
	}
	return s
}

// get returns the status, Content-Type and body of GET url.
func get(t *testing.T, url string) (int, string, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: read body: %v", url, err)
	}
	return resp.StatusCode, resp.Header.Get("Content-Type"), string(body)
}

func errorField(t *testing.T, body string) string {
	t.Helper()
	var v struct {
		Error string `json:"error"`
	}
	if err := json.Unmarshal([]byte(body), &v); err != nil || v.Error == "" {
		t.Fatalf("body %q: want a JSON object with an error field", body)
	}
	return v.Error
}

func TestNewRequiresAddr(t *testing.T) {
	if _, err := httpserver.New(httpserver.Config{}, slog.New(slog.DiscardHandler)); err == nil {
		t.Errorf("New without Addr: got nil error, want one")
	}
}

func TestHealthzAndUnknownRoutes(t *testing.T) {
	t.Parallel()
	s := newServer(t, httpserver.Config{})
	s.Handle("GET /orders/{id}", func(w http.ResponseWriter, r *http.Request) {
		httpserver.WriteJSON(w, http.StatusOK, map[string]string{"orderId": r.PathValue("id")})
	})
	s.MarkReady()
	url := serve(t, s)

	if status, ct, body := get(t, url+"/healthz"); status != http.StatusOK || ct != "application/json" {
		t.Errorf("GET /healthz: got %d %q %s, want 200 application/json", status, ct, body)
	}
	if status, _, body := get(t, url+"/orders/o1"); status != http.StatusOK || !strings.Contains(body, `"orderId":"o1"`) {
		t.Errorf("GET /orders/o1: got %d %s, want 200 with orderId o1", status, body)
	}
	status, ct, body := get(t, url+"/nowhere")
	if status != http.StatusNotFound || ct != "application/json" {
		t.Errorf("GET /nowhere: got %d %q, want 404 application/json", status, ct)
	}
	if msg := errorField(t, body); msg != "no route for GET /nowhere" {
		t.Errorf("GET /nowhere: got error %q, want %q", msg, "no route for GET /nowhere")
	}
	// A path with routes for other methods: 405, and what is allowed.
	for _, c := range []struct{ method, path, allow string }{
		{http.MethodDelete, "/orders/o1", "GET, HEAD"},
		{http.MethodPost, "/healthz", "GET, HEAD"},
	} {
		req, _ := http.NewRequest(c.method, url+c.path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", c.method, c.path, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != c.allow || resp.Header.Get("Content-Type") != "application/json" {
			t.Errorf("%s %s: got %d Allow %q %s, want 405 Allow %q with a JSON body", c.method, c.path, resp.StatusCode, resp.Header.Get("Allow"), b, c.allow)
		}
		errorField(t, string(b))
	}
}

// Before the state is restored, the API answers 503 rather than from part
// of it; health and readiness answer all along.
func TestTheAPIWaitsForTheState(t *testing.T) {
	t.Parallel()
	s := newServer(t, httpserver.Config{})
	s.Handle("GET /customers/{id}", func(w http.ResponseWriter, r *http.Request) {
		httpserver.WriteJSON(w, http.StatusOK, map[string]string{"customerId": r.PathValue("id")})
	})
	url := serve(t, s)

	status, ct, body := get(t, url+"/customers/c1")
	if status != http.StatusServiceUnavailable || ct != "application/json" {
		t.Fatalf("GET /customers/c1 before MarkReady: got %d %q %s, want 503 application/json", status, ct, body)
	}
	if msg := errorField(t, body); msg != "starting: state not restored yet" {
		t.Errorf("GET /customers/c1 before MarkReady: got error %q, want %q", msg, "starting: state not restored yet")
	}
	if status, _, body := get(t, url+"/healthz"); status != http.StatusOK {
		t.Errorf("GET /healthz before MarkReady: got %d %s, want 200", status, body)
	}

	s.MarkReady()
	if status, _, body := get(t, url+"/customers/c1"); status != http.StatusOK || !strings.Contains(body, `"customerId":"c1"`) {
		t.Errorf("GET /customers/c1 after MarkReady: got %d %s, want 200", status, body)
	}
}

func TestReadyz(t *testing.T) {
	t.Parallel()
	var kafkaDown atomic.Bool
	s := newServer(t, httpserver.Config{CheckEvery: time.Nanosecond, Checks: map[string]httpserver.Check{
		"kafka": func(context.Context) error {
			if kafkaDown.Load() {
				return errors.New("connection refused")
			}
			return nil
		},
	}})
	url := serve(t, s)

	status, _, body := get(t, url+"/readyz")
	if status != http.StatusServiceUnavailable {
		t.Fatalf("GET /readyz before MarkReady: got %d, want 503", status)
	}
	if msg := errorField(t, body); msg != "state not restored yet" {
		t.Errorf("GET /readyz before MarkReady: got error %q, want %q", msg, "state not restored yet")
	}

	s.MarkReady()
	if status, _, body := get(t, url+"/readyz"); status != http.StatusOK {
		t.Errorf("GET /readyz after MarkReady: got %d %s, want 200", status, body)
	}

	kafkaDown.Store(true)
	status, _, body = get(t, url+"/readyz")
	if status != http.StatusServiceUnavailable {
		t.Fatalf("GET /readyz with a failing check: got %d, want 503", status)
	}
	if msg := errorField(t, body); msg != "kafka: connection refused" {
		t.Errorf("GET /readyz with a failing check: got error %q, want %q", msg, "kafka: connection refused")
	}
}

// Ready reuses the checks' result for CheckEvery, so that a request path
// that asks on every request does not call Kafka and the registry each time.
func TestReadyReusesCheckResults(t *testing.T) {
	t.Parallel()
	var calls atomic.Int32
	s := newServer(t, httpserver.Config{CheckEvery: time.Hour, Checks: map[string]httpserver.Check{
		"kafka": func(context.Context) error { calls.Add(1); return nil },
	}})
	s.MarkReady()
	for range 3 {
		if err := s.Ready(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	if got := calls.Load(); got != 1 {
		t.Errorf("checks run for 3 calls within CheckEvery: got %d, want 1", got)
	}
}

func TestMetricsServesPrometheusText(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	sagas := prometheus.NewCounter(prometheus.CounterOpts{Name: "sagas_started_total", Help: "Sagas started."})
	reg.MustRegister(sagas)
	sagas.Add(3)
	url := serve(t, newServer(t, httpserver.Config{Metrics: reg}))

	status, ct, body := get(t, url+"/metrics")
	if status != http.StatusOK || !strings.HasPrefix(ct, "text/plain") {
		t.Fatalf("GET /metrics: got %d %q, want 200 text/plain", status, ct)
	}
	for _, want := range []string{"sagas_started_total 3", "go_goroutines ", "process_start_time_seconds "} {
		if !strings.Contains(body, want) {
			t.Errorf("GET /metrics: body lacks %q", want)
		}
	}
}

// A check that hangs, heedless of its context (as Sarama's metadata refresh
// does against a frozen broker), fails after CheckTimeout: readiness gives
// a 503 rather than hang, and no caller waits behind another.
func TestAHangingCheckFails(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	s := newServer(t, httpserver.Config{CheckEvery: time.Nanosecond, CheckTimeout: 100 * time.Millisecond, Checks: map[string]httpserver.Check{
		"kafka": func(context.Context) error { <-release; return nil },
	}})
	s.MarkReady()
	url := serve(t, s)

	results := make(chan error, 3)
	for range cap(results) {
		go func() { results <- s.Ready(context.Background()) }()
	}
	for range cap(results) {
		select {
		case err := <-results:
			if err == nil || err.Error() != "kafka: no answer within 100ms" {
				t.Errorf("Ready with a hanging check: got %v, want kafka: no answer within 100ms", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("Ready still waiting 10s after a check hung, want an error after 100ms")
		}
	}
	if status, _, body := get(t, url+"/readyz"); status != http.StatusServiceUnavailable || errorField(t, body) != "kafka: no answer within 100ms" {
		t.Errorf("GET /readyz with a hanging check: got %d %s, want 503 kafka: no answer within 100ms", status, body)
	}
}

func TestListenFailsOnABusyAddress(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	defer ln.Close()
	s := newServer(t, httpserver.Config{Addr: ln.Addr().String()})
	if got, err := s.Listen(); err == nil {
		got.Close()
		t.Errorf("Listen on %s, which is taken: got nil error, want one", ln.Addr())
	}
}

// A client may open a connection and send nothing on it yet (Go's HTTP
// client parks a connection it dialed for a request another one served).
// net/http counts such a connection as busy for its first 5 seconds, as
// long as the whole grace period: the stop must not wait for it, nor fail.
func TestStopDoesNotWaitForAConnectionWithoutARequest(t *testing.T) {
	t.Parallel()
	s := newServer(t, httpserver.Config{Addr: "127.0.0.1:0"})
	ln := listen(t)
	stop := serveStopping(t, s, ln)
	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer conn.Close()
	// The server has accepted it once a request on another connection is answered.
	resp, err := http.Get("http://" + ln.Addr().String() + "/healthz")
	if err != nil {
		t.Fatalf("GET /healthz: %v", err)
	}
	resp.Body.Close()
	if err := stop(); err != nil {
		t.Errorf("Serve after its context ended with an idle new connection open: %v, want nil", err)
	}
}

// A request in progress when the server stops is answered before it stops.
func TestStopWaitsForARequestInProgress(t *testing.T) {
	t.Parallel()
	s := newServer(t, httpserver.Config{Addr: "127.0.0.1:0"})
	entered, release := make(chan struct{}), make(chan struct{})
	s.Handle("GET /slow", func(w http.ResponseWriter, r *http.Request) {
		close(entered)
		<-release
		httpserver.WriteJSON(w, http.StatusOK, map[string]string{"status": "done"})
	})
	s.MarkReady()
	ln := listen(t)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, ln) }()
	answer := make(chan error, 1)
	go func() {
		resp, err := http.Get("http://" + ln.Addr().String() + "/slow")
		if err == nil {
			_, err = io.ReadAll(resp.Body)
			resp.Body.Close()
		}
		answer <- err
	}()
	<-entered
	cancel()
	// Release the request once the server has begun to stop: it then
	// refuses new connections.
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if c, err := net.Dial("tcp", ln.Addr().String()); err != nil {
			break
		} else {
			c.Close()
		}
	}
	close(release)
	if err := <-answer; err != nil {
		t.Errorf("GET /slow in progress when the server stopped: %v, want its answer", err)
	}
	if err := <-done; err != nil {
		t.Errorf("Serve: %v, want nil", err)
	}
}

// stallBody sends ln a POST /things whose body stops short of its length,
// and returns the connection, for its answer.
func stallBody(t *testing.T, ln net.Listener) net.Conn {
	t.Helper()
	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { conn.Close() })
	if _, err := io.WriteString(conn, "POST /things HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"name\":"); err != nil {
		t.Fatalf("write: %v", err)
	}
	return conn
}

// A stop does not wait for a body that stalls: the request is answered
// 503 at once, for its client to send it again, and the stop succeeds. It
// waited out the grace period, 5 s, and failed with a request in progress.
func TestAStopCutsAStalledBodyShort(t *testing.T) {
	t.Parallel()
	s := newServer(t, httpserver.Config{Addr: "127.0.0.1:0"}) // a body may take 10 s
	s.Handle("POST /things", func(w http.ResponseWriter, r *http.Request) {
		t.Error("the handler ran on a body that never arrived")
	})
	s.MarkReady()
	ln := listen(t)
	stop := serveStopping(t, s, ln)
	conn := stallBody(t, ln)
	for deadline := time.Now().Add(5 * time.Second); httpserver.ReadingBodies(s) == 0; {
		if time.Now().After(deadline) {
			t.Fatal("the request did not start reading its body within 5s")
		}
		time.Sleep(time.Millisecond) // poll interval, not synchronisation
	}
	start := time.Now()
	if err := stop(); err != nil {
		t.Errorf("the stop: %v, want none", err)
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("the stop took %s, want it not to wait for the body", took)
	}
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("read the answer: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Errorf("got %d, Retry-After %q; want 503 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
}

// A client that sends its headers and then stalls in the middle of its body
// gets a 408 with a JSON body once BodyTimeout has passed, and the server
// then stops without waiting for it.
func TestAStalledBodyGetsA408(t *testing.T) {
	t.Parallel()
	s := newServer(t, httpserver.Config{Addr: "127.0.0.1:0", BodyTimeout: 200 * time.Millisecond})
	called := make(chan struct{}, 1)
	s.Handle("POST /things", func(w http.ResponseWriter, r *http.Request) {
		called <- struct{}{}
		var v map[string]any
		if err := httpserver.DecodeJSON(r, &v); err != nil {
			httpserver.WriteError(w, http.StatusBadRequest, err.Error())
			return
		}
		httpserver.WriteJSON(w, http.StatusCreated, v)
	})
	s.MarkReady()
	ln := listen(t)
	stop := serveStopping(t, s, ln)

	conn := stallBody(t, ln)
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("read the answer to a stalled body: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestTimeout || !strings.Contains(errorField(t, string(body)), "not received within 200ms") {
		t.Errorf("got %d %s, want 408 and an error saying the body did not arrive", resp.StatusCode, body)
	}
	if len(called) != 0 {
		t.Error("the handler ran on a body that never arrived")
	}

	// A whole body, slower than nothing but within the timeout, is served,
	// and a handler that outlasts the timeout keeps its request.
	s.Handle("POST /slow", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-time.After(400 * time.Millisecond):
			httpserver.WriteJSON(w, http.StatusOK, map[string]string{"status": "done"})
		case <-r.Context().Done():
			t.Error("the request's context ended while its handler ran past BodyTimeout")
		}
	})
	resp2, err := http.Post("http://"+ln.Addr().String()+"/slow", "application/json", strings.NewReader(`{}`))
	if err != nil {
		t.Fatalf("POST /slow: %v", err)
	}
	resp2.Body.Close()
	if resp2.StatusCode != http.StatusOK {
		t.Errorf("POST /slow: got %d, want 200", resp2.StatusCode)
	}
	if err := stop(); err != nil {
		t.Errorf("Serve: %v, want nil", err)
	}
}

// A handler that panics gets its request a 500 with a JSON error, and the
// server goes on; one that panics after it began its answer has its
// connection cut. The connection was cut either way, which a forwarding
// instance reported as an owner unreachable, for its client to retry.
func TestAHandlerThatPanicsAnswers500(t *testing.T) {
	t.Parallel()
	s := newServer(t, httpserver.Config{})
	s.Handle("GET /orders/{id}", func(w http.ResponseWriter, r *http.Request) {
		if r.PathValue("id") == "begun" {
			w.WriteHeader(http.StatusOK)
			_, _ = w.Write([]byte("{"))
		}
		var m map[string]int
		m["x"] = 1 // a nil map: panics
	})
	s.MarkReady()
	url := serve(t, s)
	status, _, body := get(t, url+"/orders/o1")
	if status != http.StatusInternalServerError || !strings.Contains(errorField(t, body), "GET /orders/{id}") {
		t.Errorf("GET a handler that panics: got %d %s, want 500 with a JSON error naming the route", status, body)
	}
	if resp, err := http.Get(url + "/orders/begun"); err == nil {
		_, err = io.ReadAll(resp.Body)
		resp.Body.Close()
		if err == nil {
			t.Errorf("GET a handler that panics after it began its answer: got %d and its body whole, want the connection cut", resp.StatusCode)
		}
	}
	if status, _, _ := get(t, url+"/healthz"); status != http.StatusOK {
		t.Errorf("GET /healthz after a panic: got %d, want 200", status)
	}
}

// /readyz names the check that does not answer, even when it takes as long
// as its deadline: a deadline of /readyz's own (3s) ended the wait first,
// and the answer named no dependency.
func TestReadyzNamesACheckThatHangsPastThreeSeconds(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	s := newServer(t, httpserver.Config{CheckTimeout: 3500 * time.Millisecond, Checks: map[string]httpserver.Check{
		"kafka": func(context.Context) error { <-release; return nil },
	}})
	s.MarkReady()
	if status, _, body := get(t, serve(t, s)+"/readyz"); status != http.StatusServiceUnavailable || errorField(t, body) != "kafka: no answer within 3.5s" {
		t.Errorf("GET /readyz with a check that hangs: got %d %s, want 503 kafka: no answer within 3.5s", status, body)
	}
}

// A path with an empty or dot segment (an id left empty: /orders//cancel)
// gets a 404 with a JSON error, where net/http's mux redirected it, with
// no body, to its clean form: another route, which a client following the
// redirect posted to.
func TestAPathWithAnEmptySegmentIsNoRoute(t *testing.T) {
	t.Parallel()
	s := newServer(t, httpserver.Config{})
	s.Handle("POST /orders/{id}/cancel", func(w http.ResponseWriter, r *http.Request) {
		httpserver.WriteJSON(w, http.StatusAccepted, map[string]string{"id": r.PathValue("id")})
	})
	s.Handle("GET /orders/{id}", func(w http.ResponseWriter, r *http.Request) {
		httpserver.WriteJSON(w, http.StatusOK, map[string]string{"id": r.PathValue("id")})
	})
	s.MarkReady()
	url := serve(t, s)
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for _, c := range []struct{ method, path string }{{"POST", "/orders//cancel"}, {"GET", "/orders/o1/.."}, {"GET", "/orders/./o1"}} {
		req, _ := http.NewRequest(c.method, url+c.path, nil)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound || !strings.Contains(errorField(t, string(body)), "empty or dot segment") {
			t.Errorf("%s %s: got %d %q (Location %q), want 404 with a JSON error", c.method, c.path, resp.StatusCode, body, resp.Header.Get("Location"))
		}
	}
	if status, _, body := get(t, url+"/orders/o1"); status != http.StatusOK {
		t.Errorf("GET /orders/o1: got %d %s, want 200", status, body)
	}
}
