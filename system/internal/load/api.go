package load

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
)

// API calls the system's HTTP endpoints with a client that keeps a
// connection per concurrent caller open, so a measurement measures the
// system and not TCP handshakes. It sends each request of a service to its
// instances in turn, as a load balancer would: a request for a key another
// instance owns is forwarded there.
type API struct {
	client            *http.Client
	order, customer   []string      // base URLs of the instances
	orders, customers atomic.Uint64 // requests sent, to pick the next instance
	// Keys makes each POST carry an Idempotency-Key of the client's own
	// from its first try, as a client must that retries what it got no
	// answer to; without it, the instance that gets a POST draws the key.
	Keys bool
}

// pick returns the base URL of the instance the next request goes to.
func pick(bases []string, sent *atomic.Uint64) string {
	return bases[(sent.Add(1)-1)%uint64(len(bases))]
}

// NewAPI returns a client of the order and customer instances at the given
// base URLs, keeping up to conns connections to each open.
func NewAPI(order, customer []string, conns int) *API {
	transport := &http.Transport{
		Proxy:               nil, // loopback only
		MaxIdleConns:        2 * conns,
		MaxIdleConnsPerHost: 2 * conns,
		IdleConnTimeout:     90 * time.Second,
	}
	return &API{client: &http.Client{Transport: transport, Timeout: 30 * time.Second}, order: order, customer: customer}
}

func (a *API) Close() { a.client.CloseIdleConnections() }

type OrderView struct {
	OrderID         string `json:"orderId"`
	CustomerID      string `json:"customerId"`
	OrderTotal      int64  `json:"orderTotal"`
	State           string `json:"state"`
	RejectionReason string `json:"rejectionReason"`
}

type CustomerView struct {
	CustomerID      string `json:"customerId"`
	CreditLimit     int64  `json:"creditLimit"`
	AvailableCredit int64  `json:"availableCredit"`
}

func (a *API) CreateCustomer(ctx context.Context, name string, creditLimit int64) (string, error) {
	var out struct {
		CustomerID string `json:"customerId"`
	}
	err := a.do(ctx, http.MethodPost, pick(a.customer, &a.customers)+"/customers", map[string]any{"name": name, "creditLimit": creditLimit}, http.StatusCreated, &out)
	return out.CustomerID, err
}

// CreateCustomers creates the workload's rich and poor customers.
func (a *API) CreateCustomers(ctx context.Context) (rich, poor []string, err error) {
	for i := range RichCustomers {
		id, err := a.CreateCustomer(ctx, "rich-"+strconv.Itoa(i), RichCredit)
		if err != nil {
			return nil, nil, err
		}
		rich = append(rich, id)
	}
	for i := range PoorCustomers {
		id, err := a.CreateCustomer(ctx, "poor-"+strconv.Itoa(i), PoorCredit)
		if err != nil {
			return nil, nil, err
		}
		poor = append(poor, id)
	}
	return rich, poor, nil
}

// CreateOrder posts an order and returns its id, which is its saga's id.
func (a *API) CreateOrder(ctx context.Context, customerID string, total int64) (string, error) {
	var out struct {
		OrderID string `json:"orderId"`
		State   string `json:"state"`
	}
	body := struct {
		CustomerID string `json:"customerId"`
		OrderTotal int64  `json:"orderTotal"`
	}{customerID, total}
	if err := a.do(ctx, http.MethodPost, pick(a.order, &a.orders)+"/orders", body, http.StatusCreated, &out); err != nil {
		return "", err
	}
	// A POST sent again after a 503 may find the order its first try
	// created, and its saga ended since.
	switch out.State {
	case "PENDING", "APPROVED", "REJECTED":
	default:
		return "", fmt.Errorf("POST /orders: got order %q in state %q, want PENDING, APPROVED or REJECTED", out.OrderID, out.State)
	}
	if out.OrderID == "" {
		return "", errors.New("POST /orders: got no order id")
	}
	return out.OrderID, nil
}

func (a *API) Order(ctx context.Context, id string) (OrderView, error) {
	var o OrderView
	err := a.do(ctx, http.MethodGet, pick(a.order, &a.orders)+"/orders/"+id, nil, http.StatusOK, &o)
	return o, err
}

func (a *API) Customer(ctx context.Context, id string) (CustomerView, error) {
	var c CustomerView
	err := a.do(ctx, http.MethodGet, pick(a.customer, &a.customers)+"/customers/"+id, nil, http.StatusOK, &c)
	return c, err
}

// unavailableTries is how many times do sends a request the system
// answers 503 with Retry-After, as a client of the API should.
const unavailableTries = 5

// do sends in as JSON (none if nil) and decodes the answer into out,
// failing unless the status is want. A 503 with Retry-After (a partition
// moving, an owner slow to answer) is sent again after the time it says,
// a POST under the Idempotency-Key its answer carries, so that it creates
// one thing. Unless Keys, a POST is sent first without one, as a client
// that retries only what it got an answer to may: the instance that
// receives it draws a key whose id it owns, rather than forward it. It
// reads every answer to its end, so the connection is reused.
func (a *API) do(ctx context.Context, method, url string, in any, want int, out any) error {
	var payload []byte
	if in != nil {
		var err error
		if payload, err = json.Marshal(in); err != nil {
			return err
		}
	}
	key := ""
	if a.Keys && method == http.MethodPost {
		key = uuid.NewString()
	}
	for try := 1; ; try++ {
		status, b, next, err := a.send(ctx, method, url, payload, key)
		if err != nil {
			return err
		}
		retryAfter := next.retryAfter
		if next.key != "" && method == http.MethodPost {
			// An answer without one (not ready) made nothing.
			key = next.key
		}
		if status == http.StatusServiceUnavailable && retryAfter > 0 && try < unavailableTries {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(retryAfter):
				continue
			}
		}
		if status != want {
			return fmt.Errorf("%s %s: got %d %s, want %d", method, url, status, bytes.TrimSpace(b), want)
		}
		if err := json.Unmarshal(b, out); err != nil {
			return fmt.Errorf("%s %s: decode %s: %w", method, url, b, err)
		}
		return nil
	}
}

// answered is what an answer says of the next request: how long to wait
// before it (0 if it does not say), and the Idempotency-Key to send it
// under.
type answered struct {
	retryAfter time.Duration
	key        string
}

// send sends one request and reads its answer.
func (a *API) send(ctx context.Context, method, url string, payload []byte, key string) (int, []byte, answered, error) {
	var body io.Reader
	if payload != nil {
		body = bytes.NewReader(payload)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, body)
	if err != nil {
		return 0, nil, answered{}, err
	}
	if key != "" {
		req.Header.Set("Idempotency-Key", key)
	}
	resp, err := a.client.Do(req)
	if err != nil {
		return 0, nil, answered{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, nil, answered{}, fmt.Errorf("%s %s: read the answer: %w", method, url, err)
	}
	next := answered{key: resp.Header.Get("Idempotency-Key")}
	if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s >= 0 {
		next.retryAfter = max(time.Duration(s)*time.Second, 100*time.Millisecond)
	}
	return resp.StatusCode, b, next, nil
}
