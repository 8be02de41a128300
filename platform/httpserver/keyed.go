package httpserver

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httputil"
	"net/url"
	"time"

	"github.com/google/uuid"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/trace"

	"github.com/kafkasaga/kafkasaga/platform/telemetry"
)

// HopHeader marks a request one instance forwarded to another. The
// instance that receives it serves it or answers 503, never forwards it
// again: a request travels one hop at most, even while ownership moves.
const HopHeader = "X-Forwarded-Hop"

// Owner says where a key is served.
type Owner struct {
	Self bool   // this instance owns the key now and has its state
	Addr string // else the owner's advertised HTTP address, host:port
}

// Owners finds the instance that owns a key. ErrNoOwner (wrapped or not)
// means the key's partition is moving or has no owner now.
type Owners interface {
	Owner(ctx context.Context, key string) (Owner, error)
}

// ErrNoOwner means a key's partition is moving or has no owner now.
var ErrNoOwner = errors.New("no owner")

// HandleKeyed registers an API route whose state is partitioned by key:
// each instance holds the state of the keys it owns, and any instance
// answers any key, forwarding the request to the key's owner when that is
// another instance. Like Handle, it answers 503 until MarkReady.
//
// key returns the request's key; its error is answered 400 with the error.
// If key reads the body it must put it back, e.g.
// r.Body = io.NopCloser(bytes.NewReader(b)): h, or the owner the request
// is forwarded to, reads it again.
//
// A key whose partition is moving, an owner that cannot be learnt or does
// not answer within ForwardTimeout, a forwarded request that reaches an
// instance which no longer owns its key, and, with SelfOwners, a request
// whose key moved while h handled it all get a 503 with Retry-After: 1.
func (s *Server) HandleKeyed(pattern string, key func(r *http.Request) (string, error), h http.HandlerFunc) {
	s.Handle(pattern, func(w http.ResponseWriter, r *http.Request) {
		k, err := key(r)
		if err != nil {
			WriteError(w, http.StatusBadRequest, err.Error())
			return
		}
		if ik := r.Header.Get(HeaderIdempotencyKey); ik != "" {
			// Whatever the answer, the client can retry under it.
			w.Header().Set(HeaderIdempotencyKey, ik)
		}
		hopped := r.Header.Get(HopHeader) != ""
		if self, ok := s.cfg.Owners.(SelfOwners); ok && hopped && !owns(self, k) {
			// Served here or nowhere: who owns it now need not be asked.
			s.unavailable(w, "moved", fmt.Sprintf("key %s moved while the request was forwarded", k))
			return
		}
		// One deadline for finding the owner and hearing from it.
		deadline := time.Now().Add(s.cfg.ForwardTimeout)
		lookup, cancel := context.WithDeadline(r.Context(), deadline)
		owner, err := s.owner(lookup, k)
		cancel()
		switch {
		case errors.Is(err, ErrNoOwner):
			s.unavailable(w, "no_owner", fmt.Sprintf("partition of key %s is moving", k))
		case err != nil:
			s.logger.Warn("owner lookup failed", "key", k, "err", err)
			s.unavailable(w, "lookup_failed", fmt.Sprintf("owner of key %s: %v", k, err))
		case owner.Self:
			if a := s.stillOwned(w, k); a != nil {
				h(a, r)
				a.keep() // a handler that wrote nothing answers an empty 200, if still owned
			} else {
				h(w, r)
			}
		case hopped:
			// The key moved while the request travelled; a second hop could loop.
			s.unavailable(w, "moved", fmt.Sprintf("key %s moved to %s while the request was forwarded", k, owner.Addr))
		default:
			s.forward(w, r, k, owner.Addr, deadline)
		}
	})
}

// HandleCreate registers a keyed route that creates something whose id
// derives from the request's Idempotency-Key: prepare reads the request
// (its error is answered 400) and returns the id of each key. A request
// that carries no key gets one drawn, answered as HandleKeyed answers it;
// with Owners that are SelfOwners, drawn again, up to drawTries times,
// until its id falls in one of this instance's partitions: a create
// without a key is then made where it arrives rather than forwarded. One
// that carries a key goes to the key's owner.
//
// Where such creates are made then follows the load balancer: an instance
// that gets more of them fills its partitions more. Use it for what ends
// (an order, whose saga's records go with it), not for what is kept for
// good and should spread evenly over the partitions whoever gets the
// requests.
func (s *Server) HandleCreate(pattern string, prepare func(r *http.Request) (id func(idempotencyKey string) string, err error), h http.HandlerFunc) {
	s.HandleKeyed(pattern, func(r *http.Request) (string, error) {
		drawn := r.Header.Get(HeaderIdempotencyKey) == ""
		ik, err := IdempotencyKey(r)
		if err != nil {
			return "", err
		}
		id, err := prepare(r)
		if err != nil {
			return "", err
		}
		k := id(ik)
		self, ok := s.cfg.Owners.(SelfOwners)
		if !drawn || !ok {
			return k, nil
		}
		for range drawTries - 1 {
			if owns(self, k) {
				break
			}
			ik = uuid.NewString()
			k = id(ik)
		}
		r.Header.Set(HeaderIdempotencyKey, ik)
		return k, nil
	}, h)
}

// drawTries is how many keys HandleCreate draws at most for a request that
// carries none. An instance owning a share s of the partitions finds one
// of its own within 16 draws but for (1-s)^16 of the requests: 1 in
// 65,536 at a half, 1 in 657 at a third; the rest are forwarded.
const drawTries = 16

// SelfOwners are Owners that also tell at once, without a lookup,
// whether this instance owns a key now: Owns answers, while it does, its
// stint, which stays the same until the key's partition is assigned or
// restored again (ok false when it does not own it).
type SelfOwners interface {
	Owners
	Owns(key string) (stint any, ok bool)
}

// owns reports whether self owns key now.
func owns(self SelfOwners, key string) bool {
	_, ok := self.Owns(key)
	return ok
}

// stillOwned returns what a request of key answers through (nil without
// SelfOwners, which cannot tell at once): it asks again, as the handler
// begins its answer, whether this instance owns the key in the stint it
// did before the handler ran, and answers 503 instead if not. The lookup
// and the handler's read of its state are two steps: an instance paused
// between them, whose partition moved meanwhile (and perhaps came back,
// restored with what another owner wrote), would answer what the new
// owner may have changed, a write refused or repeated from state as much
// as a read. A write it made was fenced if the partition had moved, or
// was committed: a client that retries the 503 under its Idempotency-Key
// gets it.
func (s *Server) stillOwned(w http.ResponseWriter, key string) *ownedAnswer {
	self, ok := s.cfg.Owners.(SelfOwners)
	if !ok {
		return nil
	}
	stint, _ := self.Owns(key)
	before := w.Header().Clone() // Idempotency-Key: set for whatever answer
	return &ownedAnswer{ResponseWriter: w, owns: func() bool {
		now, ok := self.Owns(key)
		return ok && now == stint
	}, lost: func() {
		clear(w.Header()) // the handler's, for an answer it does not give
		maps.Copy(w.Header(), before)
		s.unavailable(w, "moved", fmt.Sprintf("key %s moved while its request was handled", key))
	}}
}

// ownedAnswer gives the handler's answer only if owns still holds when it
// begins; lost answers instead.
type ownedAnswer struct {
	http.ResponseWriter
	owns    func() bool
	lost    func()
	decided bool
	kept    bool
}

func (w *ownedAnswer) keep() bool {
	if !w.decided {
		w.decided = true
		if w.kept = w.owns(); !w.kept {
			w.lost()
		}
	}
	return w.kept
}

func (w *ownedAnswer) WriteHeader(code int) {
	if w.keep() {
		w.ResponseWriter.WriteHeader(code)
	}
}

func (w *ownedAnswer) Write(b []byte) (int, error) {
	if !w.keep() {
		return len(b), nil // the answer given instead stands
	}
	return w.ResponseWriter.Write(b)
}

// FlushError sends what the handler has written, which begins its answer.
func (w *ownedAnswer) FlushError() error {
	w.keep()
	return http.NewResponseController(w.ResponseWriter).Flush()
}

// Unwrap lets http.ResponseController reach the connection's writer for
// what else it does (deadlines, hijacking).
func (w *ownedAnswer) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (s *Server) owner(ctx context.Context, key string) (Owner, error) {
	if s.cfg.Owners == nil {
		return Owner{Self: true}, nil
	}
	return s.cfg.Owners.Owner(ctx, key)
}

// unavailable answers 503 with Retry-After and counts it by outcome.
func (s *Server) unavailable(w http.ResponseWriter, outcome, msg string) {
	s.forwarded.WithLabelValues(outcome).Inc()
	WriteUnavailable(w, msg)
}

// forward sends the request to the key's owner and its answer back, all
// by deadline (ForwardTimeout from the request's arrival, the owner's
// lookup included). A 503 after a timeout does not mean the owner did
// nothing: it may have made a write, which a client's retry must find
// idempotent, as the API's writes by id are.
func (s *Server) forward(w http.ResponseWriter, r *http.Request, key, addr string, deadline time.Time) {
	ctx, cancel := context.WithDeadline(r.Context(), deadline)
	defer cancel()
	proxy := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(&url.URL{Scheme: "http", Host: addr})
			pr.SetXForwarded()
			pr.Out.Header.Set(HopHeader, "1")
			// This instance has read the body already: the owner's 100
			// Continue would go to the client as a second one, and make
			// the proxy clear the headers of the answer.
			pr.Out.Header.Del("Expect")
			// What the request means, even if the client named them in
			// its Connection header, which the proxy drops them for.
			for _, h := range endToEnd {
				if v := pr.In.Header.Values(h); len(v) > 0 {
					pr.Out.Header[h] = v
				}
			}
		},
		ModifyResponse: func(resp *http.Response) error {
			s.forwarded.WithLabelValues("forwarded").Inc()
			resp.Header.Del(HeaderIdempotencyKey) // set already
			return nil
		},
		ErrorHandler: func(w http.ResponseWriter, _ *http.Request, err error) {
			if r.Context().Err() != nil {
				// The client left, or stopped sending: the owner is not to
				// blame, and one still reading learns that nothing is known.
				s.unavailable(w, "client_gone", fmt.Sprintf("owner %s of key %s: the request ended before its answer", addr, key))
				return
			}
			if errors.Is(err, context.DeadlineExceeded) {
				err = fmt.Errorf("no answer within %s", s.cfg.ForwardTimeout)
			}
			s.logger.Warn("forward to the key's owner failed", "key", key, "owner", addr, "err", err)
			s.unavailable(w, "unreachable", fmt.Sprintf("owner %s of key %s: %v", addr, key, err))
		},
		ErrorLog: slog.NewLogLogger(s.logger.Handler(), slog.LevelWarn),
	}
	proxy.Transport = s.forwarder
	proxy.ServeHTTP(w, r.WithContext(ctx))
}

// endToEnd are the headers a forwarded request keeps whatever its client
// sent: the API reads them.
var endToEnd = []string{HeaderIdempotencyKey, "Authorization", HeaderOperator}

// forwardIdle is how many idle connections to each owner the forwarding
// transport keeps: one for each request in flight to it under load.
// http.DefaultTransport keeps two, so beyond two requests at once every
// forward dialled a connection of its own and closed it after. Keeping
// them made 1.09 times the sagas/s at 0.91 times the CPU a saga, at 128
// clients and two instances of each process.
const forwardIdle = 256

// forwarder returns the transport of the requests forwarded to keys'
// owners; with traces, the owner's span is a child of the hop's, not of
// the caller's.
func forwarder(traces trace.TracerProvider) http.RoundTripper {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConns, t.MaxIdleConnsPerHost = 0, forwardIdle
	t.Proxy = nil // an instance reaches its peers directly, whatever HTTP_PROXY says
	if traces == nil {
		return t
	}
	return otelhttp.NewTransport(t, otelhttp.WithTracerProvider(traces), otelhttp.WithPropagators(telemetry.Propagator()))
}

// PathKey is the key func of a route whose key is a path value.
func PathKey(name string) func(r *http.Request) (string, error) {
	return func(r *http.Request) (string, error) { return r.PathValue(name), nil }
}

// HeaderIdempotencyKey names the header that makes a create safe to retry:
// one key, one created thing.
const HeaderIdempotencyKey = "Idempotency-Key"

// IdempotencyKey returns the request's Idempotency-Key, drawing one (and
// setting it on the request, so a forwarded request carries it) when the
// client sent none: the id of what a request creates derives from it, so
// the instance that owns that id can be found before it is stored.
// HandleKeyed answers with it, so that a client that sent none can retry.
func IdempotencyKey(r *http.Request) (string, error) {
	key := r.Header.Get(HeaderIdempotencyKey)
	if len(key) > 255 {
		return "", errors.New("Idempotency-Key is longer than 255 bytes")
	}
	if key == "" {
		key = uuid.NewString()
		r.Header.Set(HeaderIdempotencyKey, key)
	}
	return key, nil
}

// PeekJSON decodes the request's JSON body into v as DecodeJSON does, and
// puts the body back for the handler (or the owner it is forwarded to).
func PeekJSON(r *http.Request, v any) error {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err != nil {
		return fmt.Errorf("read request body: %w", err)
	}
	r.Body, r.ContentLength = io.NopCloser(bytes.NewReader(body)), int64(len(body))
	peek := r.Clone(r.Context())
	peek.Body = io.NopCloser(bytes.NewReader(body))
	return DecodeJSON(peek, v)
}
