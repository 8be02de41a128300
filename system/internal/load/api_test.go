package load

import (
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
)

// A POST is sent without an Idempotency-Key, as the bench's clients send
// it, or with Keys under one of the client's own; answered 503 with
// Retry-After, it is sent again under the key the answer carries (its
// own, with Keys), and its next answer counts; a 503 without Retry-After
// is an error at once.
func TestCreateOrderComesAgainAfterA503WithRetryAfter(t *testing.T) {
	for _, clientKeys := range []bool{false, true} {
		var mu sync.Mutex
		var keys []string
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			mu.Lock()
			keys = append(keys, r.Header.Get("Idempotency-Key"))
			n := len(keys)
			mu.Unlock()
			key := r.Header.Get("Idempotency-Key")
			if key == "" {
				key = "drawn-1"
			}
			w.Header().Set("Idempotency-Key", key)
			if n == 1 {
				w.Header().Set("Retry-After", "0")
				http.Error(w, `{"error":"moving"}`, http.StatusServiceUnavailable)
				return
			}
			if n > 2 { // the second order: a 503 without Retry-After
				http.Error(w, `{"error":"down"}`, http.StatusServiceUnavailable)
				return
			}
			w.WriteHeader(http.StatusCreated)
			w.Write([]byte(`{"orderId":"o1","state":"PENDING"}`))
		}))
		a := NewAPI([]string{srv.URL}, []string{srv.URL}, 1)
		a.Keys = clientKeys
		id, err := a.CreateOrder(t.Context(), "c1", 100)
		if err != nil || id != "o1" {
			t.Fatalf("Keys %v: CreateOrder after a 503 with Retry-After: got %q, %v; want o1", clientKeys, id, err)
		}
		ownKey := len(keys) == 2 && keys[0] != "" && keys[1] == keys[0]
		answeredKey := len(keys) == 2 && keys[0] == "" && keys[1] == "drawn-1"
		if clientKeys && !ownKey || !clientKeys && !answeredKey {
			t.Errorf("Keys %v: Idempotency-Keys sent: got %q, want the client's own twice with Keys, else none, then the one answered", clientKeys, keys)
		}
		if _, err := a.CreateOrder(t.Context(), "c1", 100); err == nil || len(keys) != 3 {
			t.Errorf("Keys %v: CreateOrder answered 503 without Retry-After: got %v after %d requests, want an error after one", clientKeys, err, len(keys)-2)
		}
		a.Close()
		srv.Close()
	}
}

// A POST sent again after a 503 may find its order's saga ended already
// (the first request committed, its answer was lost): the order it
// created, in whatever state, is the answer. A state no order can be in
// is still an error.
func TestCreateOrderAcceptsTheOrderARetryFinds(t *testing.T) {
	var mu sync.Mutex
	tries, state := 0, "APPROVED"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		tries++
		n, s := tries, state
		mu.Unlock()
		if n%2 == 1 {
			w.Header().Set("Retry-After", "0")
			http.Error(w, `{"error":"moving"}`, http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusCreated)
		w.Write([]byte(`{"orderId":"o1","state":"` + s + `"}`))
	}))
	defer srv.Close()
	a := NewAPI([]string{srv.URL}, []string{srv.URL}, 1)
	defer a.Close()
	for _, s := range []string{"APPROVED", "REJECTED"} {
		mu.Lock()
		state = s
		mu.Unlock()
		if id, err := a.CreateOrder(t.Context(), "c1", 100); err != nil || id != "o1" {
			t.Errorf("CreateOrder whose retry finds the order %s: got %q, %v; want o1", s, id, err)
		}
	}
	mu.Lock()
	state = "LOST"
	mu.Unlock()
	if _, err := a.CreateOrder(t.Context(), "c1", 100); err == nil {
		t.Error("CreateOrder answered an order in state LOST: got no error")
	}
}
