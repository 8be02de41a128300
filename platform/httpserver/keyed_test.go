package httpserver_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kafkasaga/kafkasaga/platform/httpserver"
)

// owners is a fake Owners: the owner of each key as one instance sees it.
// A key it lacks is moving; the key "broken" fails the lookup.
type owners map[string]httpserver.Owner

func (o owners) Owner(_ context.Context, key string) (httpserver.Owner, error) {
	if key == "broken" {
		return httpserver.Owner{}, errors.New("metadata: broker down")
	}
	owner, ok := o[key]
	if !ok {
		return httpserver.Owner{}, fmt.Errorf("key %s: %w", key, httpserver.ErrNoOwner)
	}
	return owner, nil
}

// served is what the test's handler answers: who served the request, and
// what of it reached them.
type served struct {
	By    string `json:"by"`
	Hop   string `json:"hop"`
	Query string `json:"query"`
	Body  string `json:"body"`
}

// echo serves a request on the named instance: 201 for a POST, 200 else.
func echo(instance string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			httpserver.WriteError(w, http.StatusBadRequest, err.Error())
			return
		}
		status := http.StatusOK
		if r.Method == http.MethodPost {
			status = http.StatusCreated
		}
		w.Header().Set("X-Served-By", instance)
		httpserver.WriteJSON(w, status, served{By: instance, Hop: r.Header.Get(httpserver.HopHeader), Query: r.URL.RawQuery, Body: string(body)})
	}
}

func idInPath(r *http.Request) (string, error) { return r.PathValue("id"), nil }

// orderIDInBody reads the key from the body, and puts the body back.
func orderIDInBody(r *http.Request) (string, error) {
	b, err := io.ReadAll(r.Body)
	if err != nil {
		return "", err
	}
	r.Body = io.NopCloser(bytes.NewReader(b))
	var v struct {
		OrderID string `json:"orderId"`
	}
	if err := json.Unmarshal(b, &v); err != nil || v.OrderID == "" {
		return "", errors.New("orderId is required")
	}
	return v.OrderID, nil
}

// keyedServer serves GET /orders/{id} and POST /orders, keyed by order id,
// on ln as the named instance, with a 300ms ForwardTimeout.
func keyedServer(t *testing.T, instance string, ln net.Listener, o owners) string {
	t.Helper()
	s := newServer(t, httpserver.Config{Owners: o, ForwardTimeout: 300 * time.Millisecond})
	s.HandleKeyed("GET /orders/{id}", idInPath, echo(instance))
	s.HandleKeyed("POST /orders", orderIDInBody, echo(instance))
	s.MarkReady()
	return serveOn(t, s, ln)
}

// send returns the response to a request, its body read.
func send(t *testing.T, method, url, body string, hop bool) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	if hop {
		req.Header.Set(httpserver.HopHeader, "1")
	}
	client := &http.Client{Timeout: 10 * time.Second}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, url, err)
	}
	return resp, string(b)
}

// Two instances, a and b, each owning some keys: every request goes to a,
// which serves its keys, forwards b's, and answers 503 for the rest.
func TestHandleKeyed(t *testing.T) {
	t.Parallel()
	lnA, lnB := listen(t), listen(t)
	closed := listen(t) // an owner that is gone: nothing listens on its port
	closed.Close()
	silent := listen(t) // an owner that hangs: it accepts connections and never answers
	t.Cleanup(func() { silent.Close() })
	addrA, addrB := lnA.Addr().String(), lnB.Addr().String()

	urlA := keyedServer(t, "a", lnA, owners{
		"a1":     {Self: true},
		"b1":     {Addr: addrB},
		"gone":   {Addr: closed.Addr().String()},
		"silent": {Addr: silent.Addr().String()},
	})
	keyedServer(t, "b", lnB, owners{"a1": {Addr: addrA}, "b1": {Self: true}})

	tests := []struct {
		name         string
		method, path string
		body         string
		hop          bool // the request says it was forwarded already
		wantStatus   int
		want         served // for a 2xx
		wantErr      string // prefix of the error, for a 4xx or 5xx
	}{
		{name: "self serves", method: "GET", path: "/orders/a1",
			wantStatus: 200, want: served{By: "a"}},
		{name: "non-owner forwards", method: "GET", path: "/orders/b1?expand=items",
			wantStatus: 200, want: served{By: "b", Hop: "1", Query: "expand=items"}},
		{name: "non-owner forwards a POST and its body", method: "POST", path: "/orders", body: `{"orderId":"b1","orderTotal":42}`,
			wantStatus: 201, want: served{By: "b", Hop: "1", Body: `{"orderId":"b1","orderTotal":42}`}},
		{name: "self serves a POST whose body the key func read", method: "POST", path: "/orders", body: `{"orderId":"a1"}`,
			wantStatus: 201, want: served{By: "a", Body: `{"orderId":"a1"}`}},
		{name: "a forwarded request to the owner is served", method: "GET", path: "/orders/a1", hop: true,
			wantStatus: 200, want: served{By: "a", Hop: "1"}},
		{name: "a forwarded request to a non-owner is not forwarded again", method: "GET", path: "/orders/b1", hop: true,
			wantStatus: 503, wantErr: "key b1 moved to " + addrB + " while the request was forwarded"},
		{name: "partition moving", method: "GET", path: "/orders/m1",
			wantStatus: 503, wantErr: "partition of key m1 is moving"},
		{name: "owner lookup fails", method: "GET", path: "/orders/broken",
			wantStatus: 503, wantErr: "owner of key broken: metadata: broker down"},
		{name: "owner unreachable", method: "GET", path: "/orders/gone",
			wantStatus: 503, wantErr: "owner " + closed.Addr().String() + " of key gone: dial tcp "},
		{name: "owner silent past ForwardTimeout", method: "GET", path: "/orders/silent",
			wantStatus: 503, wantErr: "owner " + silent.Addr().String() + " of key silent: no answer within 300ms"},
		{name: "key func error", method: "POST", path: "/orders", body: `{}`,
			wantStatus: 400, wantErr: "orderId is required"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := send(t, tt.method, urlA+tt.path, tt.body, tt.hop)
			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("%s %s: got %d %s, want %d", tt.method, tt.path, resp.StatusCode, body, tt.wantStatus)
			}
			if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type: got %q, want application/json", ct)
			}
			wantRetry := ""
			if tt.wantStatus == http.StatusServiceUnavailable {
				wantRetry = "1"
			}
			if ra := resp.Header.Get("Retry-After"); ra != wantRetry {
				t.Errorf("Retry-After: got %q, want %q", ra, wantRetry)
			}
			if tt.wantStatus >= 400 {
				if msg := errorField(t, body); !strings.HasPrefix(msg, tt.wantErr) {
					t.Errorf("error: got %q, want it to start with %q", msg, tt.wantErr)
				}
				return
			}
			if by := resp.Header.Get("X-Served-By"); by != tt.want.By {
				t.Errorf("X-Served-By: got %q, want %q", by, tt.want.By)
			}
			var got served
			if err := json.Unmarshal([]byte(body), &got); err != nil {
				t.Fatalf("body %q: %v", body, err)
			}
			if got != tt.want {
				t.Errorf("served: got %+v, want %+v", got, tt.want)
			}
		})
	}

	_, _, metrics := get(t, urlA+"/metrics")
	for _, want := range []string{
		`http_forwarded_total{outcome="forwarded"} 2`,
		`http_forwarded_total{outcome="moved"} 1`,
		`http_forwarded_total{outcome="no_owner"} 1`,
		`http_forwarded_total{outcome="lookup_failed"} 1`,
		`http_forwarded_total{outcome="unreachable"} 2`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("GET /metrics: body lacks %q", want)
		}
	}
}

// A single instance (no Owners) serves every key, once its state is restored.
func TestHandleKeyedAlone(t *testing.T) {
	t.Parallel()
	s := newServer(t, httpserver.Config{})
	s.HandleKeyed("GET /orders/{id}", idInPath, echo("alone"))
	url := serve(t, s)

	status, _, body := get(t, url+"/orders/o1")
	if status != http.StatusServiceUnavailable {
		t.Fatalf("GET /orders/o1 before MarkReady: got %d %s, want 503", status, body)
	}
	if msg := errorField(t, body); msg != "starting: state not restored yet" {
		t.Errorf("GET /orders/o1 before MarkReady: got error %q, want %q", msg, "starting: state not restored yet")
	}

	s.MarkReady()
	if status, _, body := get(t, url+"/orders/o1"); status != http.StatusOK || !strings.Contains(body, `"by":"alone"`) {
		t.Errorf("GET /orders/o1 after MarkReady: got %d %s, want 200 served here", status, body)
	}
}

// countingListener counts the connections it accepts.
type countingListener struct {
	net.Listener
	accepted atomic.Int64
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.accepted.Add(1)
	}
	return c, err
}

// barrier holds each arrival until want have arrived, then lets them all
// go and starts over.
type barrier struct {
	mu   sync.Mutex
	n    int
	want int
	open chan struct{}
}

func (b *barrier) arrive() <-chan struct{} {
	b.mu.Lock()
	defer b.mu.Unlock()
	ch := b.open
	if b.n++; b.n == b.want {
		close(b.open)
		b.n, b.open = 0, make(chan struct{})
	}
	return ch
}

// Requests forwarded to an owner reuse their connections: waves of
// requests in flight at once open connections for the first wave only,
// not one a request beyond the transport's idle ones.
func TestHandleKeyedKeepsItsConnectionsToTheOwner(t *testing.T) {
	t.Parallel()
	const inFlight, waves = 16, 3
	lnA, lnB := listen(t), listen(t)
	counted := &countingListener{Listener: lnB}
	urlA := keyedServer(t, "a", lnA, owners{"b1": {Addr: lnB.Addr().String()}})
	b := newServer(t, httpserver.Config{Owners: owners{"b1": {Self: true}}})
	wave := &barrier{want: inFlight, open: make(chan struct{})}
	b.HandleKeyed("GET /orders/{id}", idInPath, func(w http.ResponseWriter, r *http.Request) {
		select { // every request of the wave in flight at once
		case <-wave.arrive():
		case <-time.After(5 * time.Second):
		}
		echo("b")(w, r)
	})
	b.MarkReady()
	serveOn(t, b, counted)

	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: inFlight}}
	for range waves {
		var wg sync.WaitGroup
		errs := make(chan error, inFlight)
		for range inFlight {
			wg.Go(func() {
				resp, err := client.Get(urlA + "/orders/b1")
				if err != nil {
					errs <- err
					return
				}
				defer resp.Body.Close()
				if _, err := io.Copy(io.Discard, resp.Body); err != nil {
					errs <- err
				} else if resp.StatusCode != http.StatusOK || resp.Header.Get("X-Served-By") != "b" {
					errs <- fmt.Errorf("got %d from %q, want 200 from b", resp.StatusCode, resp.Header.Get("X-Served-By"))
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
	}
	if got := counted.accepted.Load(); got > inFlight {
		t.Errorf("the owner accepted %d connections for %d waves of %d requests, want %d at most", got, waves, inFlight, inFlight)
	}
}

// A create's answer carries the Idempotency-Key it was made under, drawn
// if the client sent none: a client that learns no outcome (a timeout, a
// 503 after its write may have landed) retries under it, and creates one
// thing.
func TestACreateAnswersWithItsIdempotencyKey(t *testing.T) {
	t.Parallel()
	s := newServer(t, httpserver.Config{})
	s.HandleKeyed("POST /customers", httpserver.IdempotencyKey, func(w http.ResponseWriter, r *http.Request) {
		httpserver.WriteJSON(w, http.StatusCreated, map[string]string{"key": r.Header.Get(httpserver.HeaderIdempotencyKey)})
	})
	s.MarkReady()
	url := serve(t, s)
	for _, sent := range []string{"", "k-1"} {
		resp := postUnder(t, url+"/customers", sent)
		var body map[string]string
		_ = json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		got := resp.Header.Values(httpserver.HeaderIdempotencyKey)
		if len(got) != 1 || got[0] == "" || got[0] != body["key"] || (sent != "" && got[0] != sent) {
			t.Errorf("sent Idempotency-Key %q: the answer carries %q, the create was made under %q", sent, got, body["key"])
		}
	}
}

// postUnder posts {} to url, under the Idempotency-Key key unless it is
// empty.
func postUnder(t *testing.T, url, key string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	if key != "" {
		req.Header.Set(httpserver.HeaderIdempotencyKey, key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

// slowOwners is a fake Owners whose lookup takes a while (a group
// coordinator slow to describe the group), and names addr as the owner.
type slowOwners struct {
	addr  string
	delay time.Duration
}

func (o slowOwners) Owner(ctx context.Context, _ string) (httpserver.Owner, error) {
	select {
	case <-time.After(o.delay):
		return httpserver.Owner{Addr: o.addr}, nil
	case <-ctx.Done():
		return httpserver.Owner{}, ctx.Err()
	}
}

// ForwardTimeout bounds a keyed request whole: the lookup of its owner
// and the forward to it, not each in turn.
func TestForwardTimeoutBoundsTheLookupAndTheForward(t *testing.T) {
	t.Parallel()
	silent := listen(t) // an owner that accepts connections and never answers
	t.Cleanup(func() { silent.Close() })
	const timeout = time.Second
	s := newServer(t, httpserver.Config{Owners: slowOwners{addr: silent.Addr().String(), delay: 800 * time.Millisecond}, ForwardTimeout: timeout})
	s.HandleKeyed("GET /orders/{id}", idInPath, echo("a"))
	s.MarkReady()
	url := serve(t, s)
	start := time.Now()
	resp, _ := send(t, http.MethodGet, url+"/orders/x", "", false)
	took := time.Since(start)
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Errorf("got %d with Retry-After %q, want 503 with one", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	if took > timeout+timeout/2 {
		t.Errorf("answered after %s, want within about the forward timeout, %s", took.Round(time.Millisecond), timeout)
	}
}

// A forwarded request that reaches an instance which can tell at once that
// it no longer owns the key is answered 503 at once, not after a lookup of
// the owner (a slow coordinator) whose answer it would not use.
func TestAForwardedRequestToANonOwnerIsAnsweredAtOnce(t *testing.T) {
	t.Parallel()
	lnA, lnB := listen(t), listen(t)
	a := newServer(t, httpserver.Config{Owners: ownedBy{Addr: lnB.Addr().String()}, ForwardTimeout: time.Second})
	b := newServer(t, httpserver.Config{Owners: notOwning{slowOwners{addr: "127.0.0.1:1", delay: 5 * time.Second}}, ForwardTimeout: time.Second})
	for _, s := range []*httpserver.Server{a, b} {
		s.HandleKeyed("GET /orders/{id}", idInPath, echo("x"))
		s.MarkReady()
	}
	urlA := serveOn(t, a, lnA)
	serveOn(t, b, lnB)
	start := time.Now()
	resp, body := send(t, http.MethodGet, urlA+"/orders/o1", "", false)
	if took := time.Since(start); resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(body, "moved") || took > 500*time.Millisecond {
		t.Errorf("got %d %s after %s, want a 503 saying the key moved, at once", resp.StatusCode, body, took.Round(time.Millisecond))
	}
}

// notOwning are SelfOwners that own no key.
type notOwning struct{ slowOwners }

func (notOwning) Owns(string) (any, bool) { return nil, false }

// ownedBy is a fake Owners naming one owner for every key.
type ownedBy httpserver.Owner

func (o ownedBy) Owner(context.Context, string) (httpserver.Owner, error) {
	return httpserver.Owner(o), nil
}

// A create forwarded to its key's owner answers with the Idempotency-Key
// it was made under, once, even when its client asked to be told to go
// on (Expect: 100-continue, which the owner would answer too), and when
// the owner answers too late.
func TestAForwardedCreateAnswersWithItsIdempotencyKey(t *testing.T) {
	t.Parallel()
	lnA, lnB := listen(t), listen(t)
	a := newServer(t, httpserver.Config{Owners: ownedBy{Addr: lnB.Addr().String()}, ForwardTimeout: 2 * time.Second})
	b := newServer(t, httpserver.Config{Owners: ownedBy{Self: true}})
	for _, s := range []*httpserver.Server{a, b} {
		s.HandleKeyed("POST /customers", httpserver.IdempotencyKey, func(w http.ResponseWriter, r *http.Request) {
			body, _ := io.ReadAll(r.Body)
			if string(body) == "slow" {
				select { // past the forward's 2 s
				case <-r.Context().Done():
				case <-time.After(30 * time.Second):
				}
			}
			httpserver.WriteJSON(w, http.StatusCreated, map[string]string{"key": r.Header.Get(httpserver.HeaderIdempotencyKey)})
		})
		s.MarkReady()
	}
	urlA := serveOn(t, a, lnA)
	serveOn(t, b, lnB)
	transport := &http.Transport{ExpectContinueTimeout: time.Second}
	defer transport.CloseIdleConnections()
	client := &http.Client{Transport: transport}
	for _, body := range []string{"fast", "slow"} {
		req, err := http.NewRequest(http.MethodPost, urlA+"/customers", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Expect", "100-continue")
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var answer map[string]string
		_ = json.NewDecoder(resp.Body).Decode(&answer)
		resp.Body.Close()
		got := resp.Header.Values(httpserver.HeaderIdempotencyKey)
		want := map[string]int{"fast": http.StatusCreated, "slow": http.StatusServiceUnavailable}[body]
		if resp.StatusCode != want || len(got) != 1 || got[0] == "" || (body == "fast" && got[0] != answer["key"]) {
			t.Errorf("%s owner: got %d carrying Idempotency-Key %q (made under %q), want %d carrying the key it was made under, once",
				body, resp.StatusCode, got, answer["key"], want)
		}
	}
}

// A client that stops sending while it waits for a forwarded request's
// answer (its side of the connection shut) is not told that the request
// succeeded: it gets a 503, never an empty 200.
func TestAForwardWhoseClientStopsSendingIsNotASuccess(t *testing.T) {
	t.Parallel()
	lnA, lnB := listen(t), listen(t)
	a := newServer(t, httpserver.Config{Owners: ownedBy{Addr: lnB.Addr().String()}, ForwardTimeout: 2 * time.Second})
	b := newServer(t, httpserver.Config{Owners: ownedBy{Self: true}})
	for _, s := range []*httpserver.Server{a, b} {
		s.HandleKeyed("GET /orders/{id}", idInPath, func(w http.ResponseWriter, r *http.Request) {
			select { // the owner answers once the forward is given up, or late
			case <-r.Context().Done():
			case <-time.After(time.Second):
			}
		})
		s.MarkReady()
	}
	serveOn(t, a, lnA)
	serveOn(t, b, lnB)
	conn, err := net.DialTimeout("tcp", lnA.Addr().String(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte("GET /orders/o1 HTTP/1.1\r\nHost: a\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	if err := conn.(*net.TCPConn).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("read the answer: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusServiceUnavailable || !json.Valid(body) {
		t.Errorf("answer: got %d %q, want a 503 with a JSON body", resp.StatusCode, body)
	}
}

// splitOwners is a fake Owners that splits the keys between two
// instances by their first character: this one owns those mine accepts,
// the one at other the rest.
type splitOwners struct {
	mine  func(key string) bool
	other string
	// stints, if set, numbers this instance's stints: a key's partition
	// assigned or restored again is one more.
	stints *atomic.Int64
}

func (o splitOwners) Owner(_ context.Context, key string) (httpserver.Owner, error) {
	if o.mine(key) {
		return httpserver.Owner{Self: true}, nil
	}
	return httpserver.Owner{Addr: o.other}, nil
}

func (o splitOwners) Owns(key string) (any, bool) {
	var stint int64
	if o.stints != nil {
		stint = o.stints.Load()
	}
	return stint, o.mine(key)
}

// A create sent without an Idempotency-Key is made where it arrives,
// under a key drawn until its id is one the instance owns; one sent with
// a key goes to that key's owner; an instance that owns no key forwards
// what it draws to its owner, as does one whose Owners cannot say at once
// what it owns (no SelfOwners: its lookups may take a while).
func TestACreateWithoutAKeyIsMadeWhereItArrives(t *testing.T) {
	t.Parallel()
	lnA, lnB, lnNone, lnAll, lnSlow := listen(t), listen(t), listen(t), listen(t), listen(t)
	firstHalf := func(k string) bool { return k[0] < '8' }
	servers := map[string]httpserver.Config{
		"a":    {Owners: splitOwners{mine: firstHalf, other: lnB.Addr().String()}},
		"b":    {Owners: splitOwners{mine: func(k string) bool { return !firstHalf(k) }, other: lnA.Addr().String()}},
		"none": {Owners: splitOwners{mine: func(string) bool { return false }, other: lnAll.Addr().String()}},
		"all":  {Owners: ownedBy{Self: true}},
		"slow": {Owners: slowOwners{addr: lnAll.Addr().String(), delay: 100 * time.Millisecond}},
	}
	urls := map[string]string{}
	for name, ln := range map[string]net.Listener{"a": lnA, "b": lnB, "none": lnNone, "all": lnAll, "slow": lnSlow} {
		s := newServer(t, servers[name])
		// The id is the key read backwards, so that the id, not the key,
		// decides the owner.
		s.HandleCreate("POST /orders", func(*http.Request) (func(string) string, error) {
			return func(key string) string { return reverse(key) }, nil
		}, echo(name))
		s.MarkReady()
		urls[name] = serveOn(t, s, ln)
	}
	post := func(to, key string) (by, hop, answered string) {
		t.Helper()
		resp := postUnder(t, urls[to]+"/orders", key)
		defer resp.Body.Close()
		var got served
		if err := json.NewDecoder(resp.Body).Decode(&got); err != nil || resp.StatusCode != http.StatusCreated {
			t.Fatalf("POST to %s with key %q: got %d (%v), want 201", to, key, resp.StatusCode, err)
		}
		return got.By, got.Hop, resp.Header.Get(httpserver.HeaderIdempotencyKey)
	}
	// Each owns half the ids, so all 16 draws miss for 1 request in
	// 65,536, which is then forwarded to the owner of the last (as
	// drawTries says): one such in a run is allowed, not two (about 1 run
	// in 5 million), and a create made where it arrives is one of its ids.
	forwarded := 0
	for i := range 40 {
		to, other := []string{"a", "b"}[i%2], []string{"b", "a"}[i%2]
		by, hop, key := post(to, "")
		if by == other && hop != "" && firstHalf(reverse(key)) == (other == "a") {
			forwarded++
			continue
		}
		if by != to || hop != "" || firstHalf(reverse(key)) != (to == "a") {
			t.Fatalf("POST without a key to %s: made by %s (hop %q) under key %q, want made there, under a key whose id it owns", to, by, hop, key)
		}
	}
	if forwarded > 1 {
		t.Errorf("%d of 40 POSTs without a key forwarded, want all but one at most made where they arrived", forwarded)
	}
	if by, hop, _ := post("a", reverse("f-owned-by-b")); by != "b" || hop == "" {
		t.Errorf("POST to a with a key b owns: made by %s (hop %q), want forwarded to b", by, hop)
	}
	for _, to := range []string{"none", "slow"} {
		start := time.Now()
		if by, hop, key := post(to, ""); by != "all" || hop == "" || key == "" {
			t.Errorf("POST without a key to %s: made by %s (hop %q) under key %q, want forwarded to the key's owner", to, by, hop, key)
		}
		if took := time.Since(start); took > time.Second {
			t.Errorf("POST without a key to %s: answered after %s, want one lookup at most", to, took)
		}
	}
}

func reverse(s string) string {
	r := []rune(s)
	slices.Reverse(r)
	return string(r)
}

// A request whose key's partition moves away between the owner's lookup
// and the handler's answer (the instance paused between the two), or away
// and back (assigned again, restored with what another owner wrote),
// answers 503, not what the handler read: a read, or a write refused or
// repeated from state.
func TestARequestWhoseKeyMovedWhileItWasHandledIsNotAnswered(t *testing.T) {
	t.Parallel()
	var owned atomic.Bool
	var stints atomic.Int64
	s := newServer(t, httpserver.Config{Owners: splitOwners{mine: func(string) bool { return owned.Load() }, other: "127.0.0.1:1", stints: &stints}})
	moves := func(w http.ResponseWriter, r *http.Request) {
		owned.Store(false) // after the lookup, before the answer
		w.Header().Set("ETag", `"1"`)
		httpserver.WriteJSON(w, http.StatusOK, map[string]string{"by": "here"})
	}
	s.HandleKeyed("GET /orders/{id}", idInPath, moves)
	s.HandleKeyed("POST /orders/{id}", idInPath, moves)
	s.HandleKeyed("GET /silent/{id}", idInPath, func(w http.ResponseWriter, r *http.Request) {
		owned.Store(false)
		w.Header().Set("ETag", `"1"`) // and an empty 200, by returning
	})
	s.HandleKeyed("GET /flushed/{id}", idInPath, func(w http.ResponseWriter, r *http.Request) {
		owned.Store(false)
		w.Header().Set("ETag", `"1"`)
		_ = http.NewResponseController(w).Flush()
	})
	s.HandleKeyed("GET /back/{id}", idInPath, func(w http.ResponseWriter, r *http.Request) {
		stints.Add(1) // away and back, still owned
		w.Header().Set("ETag", `"1"`)
		httpserver.WriteJSON(w, http.StatusOK, map[string]string{"by": "here, the stint before"})
	})
	s.MarkReady()
	url := serve(t, s)

	for _, path := range []string{"GET /orders/o1", "POST /orders/o1", "GET /silent/o1", "GET /flushed/o1", "GET /back/o1"} {
		owned.Store(true)
		method, path, _ := strings.Cut(path, " ")
		req, _ := http.NewRequest(method, url+path, nil)
		req.Header.Set(httpserver.HeaderIdempotencyKey, "k1")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(body), "moved") || resp.Header.Get("ETag") != "" ||
			resp.Header.Get("Retry-After") != "1" || resp.Header.Get(httpserver.HeaderIdempotencyKey) != "k1" {
			t.Errorf("%s %s: got %d %s (ETag %q, Idempotency-Key %q), want a 503 saying the key moved, with the request's key and not the handler's headers",
				method, path, resp.StatusCode, body, resp.Header.Get("ETag"), resp.Header.Get(httpserver.HeaderIdempotencyKey))
		}
	}
}
