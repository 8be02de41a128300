// Package httpserver serves a process's HTTP API together with what every
// process serves: /healthz, /readyz and /metrics. It also holds the JSON
// helpers that keep every error a 4xx or 5xx with a body {"error": "..."}.
// Routes registered with HandleKeyed are answered by any of a process's
// instances: the one that does not own a key forwards to the one that does.
package httpserver

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/trace"
	"golang.org/x/sync/singleflight"

	"github.com/kafkasaga/kafkasaga/platform/telemetry"
)

// Check tells whether a dependency answers.
type Check func(ctx context.Context) error

// Config configures New.
type Config struct {
	Addr    string
	Metrics *prometheus.Registry
	// Checks must all pass, after MarkReady, for /readyz to answer 200.
	Checks map[string]Check
	// CheckEvery is how long a result of the checks is reused (default 1s):
	// POST /orders asks on every request, which must not cost a round trip
	// to Kafka and the registry each time.
	CheckEvery time.Duration
	// CheckTimeout is how long a check may take before it counts as failed
	// (default 2s), whether or not it honours its context: a dependency
	// that hangs must give a 503, not a request that hangs with it. Below
	// ForwardTimeout, so that an owner's 503 naming the dependency reaches
	// the instance that forwarded the request before it gives up.
	CheckTimeout time.Duration
	// Owners finds the instance that owns a key, for HandleKeyed; nil
	// means a single instance, which owns every key.
	Owners Owners
	// ForwardTimeout bounds a request forwarded to a key's owner (default
	// 3s): an owner that hangs must give a 503, not a request that hangs.
	ForwardTimeout time.Duration
	// BodyTimeout bounds the arrival of a request's body (default 10s): a
	// client that sends its headers and then stalls gets a 408, rather
	// than hold a handler, and the stop of the process, for good.
	BodyTimeout time.Duration
	// Traces, when set, traces every request of the API (not /healthz,
	// /readyz or /metrics), continuing the caller's W3C trace context, and
	// every request forwarded to a key's owner. Nil: no spans, at no cost.
	Traces trace.TracerProvider
}

// Server is the HTTP server of one process.
type Server struct {
	cfg    Config
	mux    *http.ServeMux
	ready  atomic.Bool
	logger *slog.Logger
	// forwarded counts keyed requests not served here, by outcome.
	forwarded *prometheus.CounterVec
	// inProgress counts the requests being served, for the stop.
	inProgress atomic.Int64
	// reading holds the requests still reading their body, which a stop
	// cuts short (stopping): a stalled one would hold it BodyTimeout.
	readingMu sync.Mutex
	reading   map[*http.ResponseController]struct{}
	stopping  bool
	// forwarder carries the requests forwarded to keys' owners.
	forwarder http.RoundTripper

	mu        sync.Mutex // guards the last result of the checks
	checkedAt time.Time
	checkErr  error
	checking  singleflight.Group // one run of the checks at a time, its result shared
}

// New returns a server with the health, readiness and metrics endpoints.
// Register the API on Handle before Run.
func New(cfg Config, logger *slog.Logger) (*Server, error) {
	if cfg.Addr == "" {
		return nil, errors.New("httpserver: Addr is required")
	}
	if cfg.Metrics == nil {
		cfg.Metrics = prometheus.NewRegistry()
	}
	if cfg.CheckEvery == 0 {
		cfg.CheckEvery = time.Second
	}
	if cfg.CheckTimeout == 0 {
		cfg.CheckTimeout = 2 * time.Second
	}
	if cfg.ForwardTimeout == 0 {
		cfg.ForwardTimeout = 3 * time.Second
	}
	if cfg.BodyTimeout == 0 {
		cfg.BodyTimeout = 10 * time.Second
	}
	_ = cfg.Metrics.Register(collectors.NewGoCollector())
	_ = cfg.Metrics.Register(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	forwarded := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "http_forwarded_total",
		Help: "Keyed requests not served by this instance: forwarded to the key's owner, or answered 503, by outcome.",
	}, []string{"outcome"})
	if err := cfg.Metrics.Register(forwarded); err != nil {
		return nil, fmt.Errorf("httpserver: register http_forwarded_total: %w", err)
	}
	s := &Server{cfg: cfg, mux: http.NewServeMux(), logger: logger, forwarded: forwarded, forwarder: forwarder(cfg.Traces)}
	s.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		WriteJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	s.mux.HandleFunc("GET /readyz", s.readyz)
	s.mux.Handle("GET /metrics", promhttp.HandlerFor(cfg.Metrics, promhttp.HandlerOpts{}))
	s.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if allow := s.allowed(r); len(allow) > 0 {
			w.Header().Set("Allow", strings.Join(allow, ", "))
			WriteError(w, http.StatusMethodNotAllowed, fmt.Sprintf("%s is not allowed on %s: %s is", r.Method, r.URL.Path, strings.Join(allow, ", ")))
			return
		}
		WriteError(w, http.StatusNotFound, fmt.Sprintf("no route for %s %s", r.Method, r.URL.Path))
	})
	return s, nil
}

// allowed returns the methods with a route for r's path. The mux answers
// 405 itself only when no pattern matches, and this catch-all matches
// every path.
func (s *Server) allowed(r *http.Request) []string {
	var allow []string
	for _, m := range []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete} {
		probe := r.Clone(r.Context())
		probe.Method = m
		if _, pattern := s.mux.Handler(probe); m != r.Method && pattern != "/" && pattern != "" {
			allow = append(allow, m)
		}
	}
	return allow
}

// Handle registers an API route (a net/http pattern such as "GET /orders/{id}").
// It answers 503 until MarkReady: before the state is restored, a read
// would miss records and a write could be decided on part of the state.
func (s *Server) Handle(pattern string, h http.HandlerFunc) {
	var handler http.Handler = http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		w := &answering{ResponseWriter: rw}
		defer s.recoverFrom(w, pattern)
		if !s.ready.Load() {
			WriteUnavailable(w, "starting: state not restored yet")
			return
		}
		if !s.readBody(w, r) {
			return
		}
		h(w, r)
	})
	if s.cfg.Traces != nil {
		// The span is named after the route, e.g. "POST /orders".
		handler = otelhttp.NewHandler(handler, pattern,
			otelhttp.WithTracerProvider(s.cfg.Traces), otelhttp.WithPropagators(telemetry.Propagator()))
	}
	s.mux.Handle(pattern, handler)
}

// readBody reads the request's body, up to one byte past maxBody (enough
// for DecodeJSON to tell it is too large), within BodyTimeout, and puts
// it back in memory for the handler. It reports whether the handler is
// to run; if not, it has answered. The deadline is lifted once the body
// is in: net/http reads on in the background while the handler runs, and
// a deadline passing then would cancel the request's context.
func (s *Server) readBody(w http.ResponseWriter, r *http.Request) bool {
	if r.Body == nil || r.Body == http.NoBody {
		return true
	}
	rc := http.NewResponseController(w)
	timed := rc.SetReadDeadline(time.Now().Add(s.cfg.BodyTimeout)) == nil
	if !s.startReading(rc) {
		WriteUnavailable(w, stoppingMsg)
		return false
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	stopped := s.doneReading(rc)
	var timeout net.Error
	switch {
	case stopped && err != nil:
		WriteUnavailable(w, stoppingMsg)
		return false
	case errors.As(err, &timeout) && timeout.Timeout():
		// The deadline stays: net/http reads what is left of the body
		// before it answers, and must fail at once, not wait for it.
		WriteError(w, http.StatusRequestTimeout, fmt.Sprintf("request body not received within %s", s.cfg.BodyTimeout))
		return false
	case err != nil:
		WriteError(w, http.StatusBadRequest, fmt.Sprintf("read request body: %v", err))
		return false
	}
	if timed {
		_ = rc.SetReadDeadline(time.Time{})
	}
	r.Body, r.ContentLength = io.NopCloser(bytes.NewReader(body)), int64(len(body))
	return true
}

// stoppingMsg answers a request whose body a stop cut short, or came after.
const stoppingMsg = "stopping: send it to another instance, or again"

// startReading notes a request reading its body, unless the server is
// stopping.
func (s *Server) startReading(rc *http.ResponseController) bool {
	s.readingMu.Lock()
	defer s.readingMu.Unlock()
	if s.stopping {
		return false
	}
	if s.reading == nil {
		s.reading = map[*http.ResponseController]struct{}{}
	}
	s.reading[rc] = struct{}{}
	return true
}

// doneReading forgets a request whose body is read, and reports whether
// the server began to stop meanwhile.
func (s *Server) doneReading(rc *http.ResponseController) bool {
	s.readingMu.Lock()
	defer s.readingMu.Unlock()
	delete(s.reading, rc)
	return s.stopping
}

// stopReading cuts short the reads of the requests still reading their
// body, and refuses those that come after.
func (s *Server) stopReading() {
	s.readingMu.Lock()
	defer s.readingMu.Unlock()
	s.stopping = true
	for rc := range s.reading {
		_ = rc.SetReadDeadline(time.Now())
	}
}

// Handler returns the server's routes, for tests.
func (s *Server) Handler() http.Handler { return s.mux }

// recoverFrom answers a handler's panic with a 500 {"error"}, when the
// handler wrote nothing yet (otherwise the connection is cut, as net/http
// cuts it), and logs it with its stack: the client learns that the
// request failed here, not that the instance is unreachable (which a
// forwarder would say, and a client retry).
func (s *Server) recoverFrom(w *answering, pattern string) {
	p := recover()
	if p == nil {
		return
	}
	if p == http.ErrAbortHandler { // net/http's sentinel: the connection is cut, quietly
		panic(p)
	}
	s.logger.Error("handler panicked", "route", pattern, "panic", p, "stack", string(debug.Stack()))
	if w.answered {
		panic(http.ErrAbortHandler)
	}
	WriteError(w, http.StatusInternalServerError, fmt.Sprintf("internal error serving %s", pattern))
}

// answering is a ResponseWriter that knows whether an answer was begun.
type answering struct {
	http.ResponseWriter
	answered bool
}

func (a *answering) WriteHeader(code int) {
	a.answered = true
	a.ResponseWriter.WriteHeader(code)
}

func (a *answering) Write(b []byte) (int, error) {
	a.answered = true
	return a.ResponseWriter.Write(b)
}

// FlushError sends what was written, the status at least: an answer begun.
func (a *answering) FlushError() error {
	a.answered = true
	return http.NewResponseController(a.ResponseWriter).Flush()
}

// Unwrap gives http.ResponseController the ResponseWriter underneath.
func (a *answering) Unwrap() http.ResponseWriter { return a.ResponseWriter }

// MarkReady is called once the process's state is restored and it can
// write (process.towardReady).
func (s *Server) MarkReady() { s.ready.Store(true) }

// Ready reports whether the process is ready and its dependencies answer.
// Callers within CheckEvery of the last run of the checks share its result;
// callers while they run share theirs, and wait no longer than ctx allows.
func (s *Server) Ready(ctx context.Context) error {
	if !s.ready.Load() {
		return errors.New("state not restored yet")
	}
	s.mu.Lock()
	fresh, err := time.Since(s.checkedAt) < s.cfg.CheckEvery, s.checkErr
	s.mu.Unlock()
	if fresh {
		return err
	}
	run := s.checking.DoChan("", func() (any, error) {
		err := s.runChecks()
		s.mu.Lock()
		s.checkedAt, s.checkErr = time.Now(), err
		s.mu.Unlock()
		return nil, err
	})
	select {
	case r := <-run:
		return r.Err
	case <-ctx.Done():
		return fmt.Errorf("readiness checks: %w", ctx.Err())
	}
}

// runChecks runs every check at once, all within CheckTimeout.
func (s *Server) runChecks() error {
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.CheckTimeout)
	defer cancel()
	results := map[string]chan error{}
	for name, check := range s.cfg.Checks {
		result := make(chan error, 1) // a check may outlive its timeout: never block it
		go func() { result <- check(ctx) }()
		results[name] = result
	}
	var errs []error
	for name, result := range results {
		select {
		case err := <-result:
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", name, err))
			}
		case <-ctx.Done():
			errs = append(errs, fmt.Errorf("%s: no answer within %s", name, s.cfg.CheckTimeout))
		}
	}
	return errors.Join(errs...)
}

// readyz answers whether the process is ready, and if not why: the checks
// end within CheckTimeout, naming one that did not answer, so it waits for
// them (a deadline of its own would fire first and name none).
func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	if err := s.Ready(r.Context()); err != nil {
		WriteError(w, http.StatusServiceUnavailable, err.Error())
		return
	}
	WriteJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}

// cleanPath is p as net/http's mux cleans it: rooted, without empty or
// dot segments, a trailing slash kept.
func cleanPath(p string) string {
	if p == "" || p[0] != '/' {
		p = "/" + p
	}
	clean := path.Clean(p)
	if strings.HasSuffix(p, "/") && clean != "/" {
		clean += "/"
	}
	return clean
}

// Listen opens the server's port, for Serve.
func (s *Server) Listen() (net.Listener, error) {
	ln, err := net.Listen("tcp", s.cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", s.cfg.Addr, err)
	}
	return ln, nil
}

// Serve serves on ln until ctx ends, then shuts down gracefully.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	counted := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.inProgress.Add(1)
		defer s.inProgress.Add(-1)
		if p := r.URL.Path; cleanPath(p) != p {
			// net/http's mux redirects it to its clean form, with no
			// JSON body: /orders//cancel (an id left empty) to
			// /orders/cancel, which a client following it posts to.
			WriteError(w, http.StatusNotFound, fmt.Sprintf("no route for %s %s: the path has an empty or dot segment", r.Method, p))
			return
		}
		s.mux.ServeHTTP(w, r)
	})
	srv := &http.Server{Handler: counted, ReadHeaderTimeout: 5 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	s.logger.Info("http listening", "addr", ln.Addr().String())
	select {
	case err := <-errc:
		return fmt.Errorf("http server: %w", err)
	case <-ctx.Done():
	}
	s.stopReading()
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		// net/http counts a connection on which no request has arrived
		// as busy for its first 5 seconds (a client parks connections it
		// dialed and did not need), the whole grace period. Only a request
		// still in progress makes the stop a failure.
		if n := s.inProgress.Load(); n > 0 {
			return fmt.Errorf("http shutdown: %d requests in progress: %w", n, err)
		}
		_ = srv.Close()
	}
	<-errc
	return nil
}
