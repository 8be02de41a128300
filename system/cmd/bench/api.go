package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync/atomic"
	"time"
)

// api calls the system's HTTP endpoints with a client that keeps a
// connection per concurrent caller open, so the bench measures the system
// and not TCP handshakes. It sends each request of a service to its
// instances in turn, as a load balancer would: a request for a key another
// instance owns is forwarded there.
type api struct {
	client            *http.Client
	t                 *target
	orders, customers atomic.Uint64 // requests sent, to pick the next instance
}

// pick returns the base URL of the instance the next request goes to.
func pick(bases []string, sent *atomic.Uint64) string {
	return bases[(sent.Add(1)-1)%uint64(len(bases))]
}

func newAPI(t *target, conns int) *api {
	transport := &http.Transport{
		Proxy:               nil, // loopback only
		MaxIdleConns:        2 * conns,
		MaxIdleConnsPerHost: 2 * conns,
		IdleConnTimeout:     90 * time.Second,
	}
	return &api{client: &http.Client{Transport: transport, Timeout: 30 * time.Second}, t: t}
}

func (a *api) close() { a.client.CloseIdleConnections() }

type orderView struct {
	OrderID         string `json:"orderId"`
	CustomerID      string `json:"customerId"`
	OrderTotal      int64  `json:"orderTotal"`
	State           string `json:"state"`
	RejectionReason string `json:"rejectionReason"`
}

type customerView struct {
	CustomerID      string `json:"customerId"`
	CreditLimit     int64  `json:"creditLimit"`
	AvailableCredit int64  `json:"availableCredit"`
}

func (a *api) createCustomer(ctx context.Context, name string, creditLimit int64) (string, error) {
	var out struct {
		CustomerID string `json:"customerId"`
	}
	err := a.do(ctx, http.MethodPost, pick(a.t.customer, &a.customers)+"/customers", map[string]any{"name": name, "creditLimit": creditLimit}, http.StatusCreated, &out)
	return out.CustomerID, err
}

// createOrder posts an order and returns its id, which is its saga's id.
func (a *api) createOrder(ctx context.Context, customerID string, total int64) (string, error) {
	var out struct {
		OrderID string `json:"orderId"`
		State   string `json:"state"`
	}
	body := struct {
		CustomerID string `json:"customerId"`
		OrderTotal int64  `json:"orderTotal"`
	}{customerID, total}
	if err := a.do(ctx, http.MethodPost, pick(a.t.order, &a.orders)+"/orders", body, http.StatusCreated, &out); err != nil {
		return "", err
	}
	if out.OrderID == "" || out.State != "PENDING" {
		return "", fmt.Errorf("POST /orders: got order %q in state %q, want an id and PENDING", out.OrderID, out.State)
	}
	return out.OrderID, nil
}

func (a *api) order(ctx context.Context, id string) (orderView, error) {
	var o orderView
	err := a.do(ctx, http.MethodGet, pick(a.t.order, &a.orders)+"/orders/"+id, nil, http.StatusOK, &o)
	return o, err
}

func (a *api) customer(ctx context.Context, id string) (customerView, error) {
	var c customerView
	err := a.do(ctx, http.MethodGet, pick(a.t.customer, &a.customers)+"/customers/"+id, nil, http.StatusOK, &c)
	return c, err
}

// do sends in as JSON (none if nil) and decodes the answer into out,
// failing unless the status is want. It reads every answer to its end, so
// the connection is reused.
func (a *api) do(ctx context.Context, method, url string, in any, want int, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, body)
	if err != nil {
		return err
	}
	resp, err := a.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("%s %s: read the answer: %w", method, url, err)
	}
	if resp.StatusCode != want {
		return fmt.Errorf("%s %s: got %d %s, want %d", method, url, resp.StatusCode, bytes.TrimSpace(b), want)
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("%s %s: decode %s: %w", method, url, b, err)
	}
	return nil
}
