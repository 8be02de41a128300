package system_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/riferrei/srclient"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kafkasaga/kafkasaga/contracts/serde"
	"github.com/kafkasaga/kafkasaga/devstack"
	orchestrator "github.com/kafkasaga/kafkasaga/orchestrator/service"
	"github.com/kafkasaga/kafkasaga/platform/config"
	payment "github.com/kafkasaga/kafkasaga/services/payment/service"
	"github.com/kafkasaga/kafkasaga/system"
	"github.com/kafkasaga/kafkasaga/system/internal/load"
)

// paymentLimit is the payment service's limit in these tests: larger orders
// are declined, whatever the customer's credit.
const paymentLimit = 1_000_000

// refundLimit is the payment service's refund limit in these tests: the
// cancellation of a larger order is refused.
const refundLimit = 500_000

// running is the whole system, started by startSystem, and how to reach it.
type running struct {
	stack                           *devstack.Stack
	order, customer, payment, sagas string // base URLs
	client                          *http.Client
	stop                            func() // stops every process (not the stack) and waits for them
}

// option changes how startSystem runs the system.
type option func(*system.Config)

// without returns the name of every process but names, for a test that
// runs the system without them: a process added to system.Processes runs
// in it too.
func without(names ...string) []string {
	return slices.DeleteFunc(system.Names(), func(n string) bool { return slices.Contains(names, n) })
}

// inOrder reports whether got, less the items want never names, is want:
// what the test expects, each once and in its order, whatever else comes
// between. A step a user adds to the saga (docs/adding-a-saga-step.md)
// adds events and exchanges of its own, which the template's tests do not
// know.
func inOrder(got, want []string) bool {
	known := slices.DeleteFunc(slices.Clone(got), func(g string) bool { return !slices.Contains(want, g) })
	return slices.Equal(known, want)
}

// startSystem runs the embedded stack (or, with KAFKA_BROKERS set, the
// registry on that Kafka) and the processes on free ports, waits until every
// one is ready, and stops them when the test ends.
func startSystem(t *testing.T, opts ...option) *running {
	t.Helper()
	return startSystemOn(t, devstack.StartForTest(t), opts...)
}

// startSystemOn is startSystem on a stack the test started itself.
func startSystemOn(t *testing.T, stack *devstack.Stack, opts ...option) *running {
	t.Helper()
	kafka := config.Kafka{Brokers: stack.Brokers(), SchemaRegistryURL: stack.RegistryURL(), AutoRegisterSchemas: true}
	cfg := system.Config{
		Kafka:        kafka,
		Payment:      payment.Config{PaymentLimit: paymentLimit, RefundLimit: refundLimit},
		Orchestrator: orchestrator.Config{StepTimeout: 10 * time.Second, StepMaxAttempts: 5},
	}
	base := map[string]string{} // by process
	for i, addr := range freeAddrs(t, len(system.Processes)) {
		p := system.Processes[i]
		*p.HTTPAddr(&cfg) = addr
		base[p.Name] = "http://" + addr
	}
	for _, opt := range opts {
		opt(&cfg)
	}
	done, stop := runInBackground(t, func(ctx context.Context) error { return system.Run(ctx, cfg, quietLogger()) })
	r := &running{stop: stop, stack: stack, order: base["order"], customer: base["customer"],
		payment: base["payment"], sagas: base["orchestrator"], client: &http.Client{Timeout: 10 * time.Second}}
	for _, name := range system.Names() {
		if len(cfg.Services) > 0 && !slices.Contains(cfg.Services, name) {
			continue
		}
		base := base[name]
		eventually(t, 60*time.Second, func() error {
			select {
			case err := <-done:
				t.Fatalf("system stopped while starting: %v", err)
			default:
			}
			return r.ready(base)
		})
	}
	return r
}

// ready says whether the process at base answers /readyz with 200.
func (r *running) ready(base string) error {
	status, body, err := r.try(http.MethodGet, base+"/readyz", nil)
	if err != nil {
		return err
	}
	if status != http.StatusOK {
		return fmt.Errorf("%s/readyz: %d %s", base, status, body)
	}
	return nil
}

// quietLogger logs warnings and errors only, to stderr, which go test shows
// for failing packages.
func quietLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// runInBackground runs fn until stop is called or the test ends: stop
// cancels its context and waits for it to return. done reports an early
// return.
func runInBackground(t *testing.T, fn func(ctx context.Context) error) (done <-chan error, stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ch := make(chan error, 1)
	go func() { ch <- fn(ctx) }()
	stop = sync.OnceFunc(func() {
		cancel()
		select {
		case err := <-ch:
			if err != nil && !errors.Is(err, context.Canceled) {
				t.Errorf("stopped with: %v", err)
			}
		case <-time.After(30 * time.Second):
			var stacks strings.Builder
			_ = pprof.Lookup("goroutine").WriteTo(&stacks, 1)
			t.Errorf("did not stop within 30s of its context ending; goroutines:\n%s", stacks.String())
		}
	})
	t.Cleanup(stop)
	return ch, stop
}

// metric sums the samples of a Prometheus counter on base's /metrics.
func metric(t *testing.T, base, name string) float64 {
	t.Helper()
	families, err := load.Metrics(t.Context(), http.DefaultClient, base)
	if err != nil {
		t.Fatal(err)
	}
	return load.Total(families, name)
}

func freeAddrs(t *testing.T, n int) []string {
	t.Helper()
	var addrs []string
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addrs = append(addrs, ln.Addr().String())
		defer ln.Close()
	}
	return addrs
}

// eventually calls check until it returns nil, failing the test with the
// last error when the deadline passes.
func eventually(t *testing.T, within time.Duration, check func() error) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not within %s: %v", within, err)
		}
		time.Sleep(20 * time.Millisecond) // polling interval, not synchronisation
	}
}

func (r *running) do(t *testing.T, method, url string, body []byte) (int, []byte) {
	t.Helper()
	status, b, err := r.try(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	return status, b
}

// try is do for a caller that expects failures, such as a poll.
func (r *running) try(method, url string, body []byte, headers ...string) (int, []byte, error) {
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := r.client.Do(req)
	if err != nil {
		return 0, nil, fmt.Errorf("%s %s: %w", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

func (r *running) get(t *testing.T, url string) (int, []byte) {
	t.Helper()
	return r.do(t, http.MethodGet, url, nil)
}

// postJSON posts v and decodes the answer into out, failing unless the
// status is 201. It does what the API asks of a client: a 503 with
// Retry-After (the key's partition is moving) is sent again, with the same
// Idempotency-Key, for up to 10 s.
func (r *running) postJSON(t *testing.T, url string, v, out any) {
	t.Helper()
	body, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	status, resp := r.postRetrying(t, url, body, "Idempotency-Key", uuid.NewString())
	if status != http.StatusCreated {
		t.Fatalf("POST %s %s: got %d %s, want 201", url, body, status, resp)
	}
	if err := json.Unmarshal(resp, out); err != nil {
		t.Fatalf("POST %s: decode %s: %v", url, resp, err)
	}
}

// postRetrying posts body with the given headers (name, value, ...) and
// does what the API asks of a client: a 503 with Retry-After (the key's
// partition is moving) is sent again, the same, for up to 10 s. It returns
// the last answer's status and body.
func (r *running) postRetrying(t *testing.T, url string, body []byte, headers ...string) (int, []byte) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; {
		req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i+1 < len(headers); i += 2 {
			req.Header.Set(headers[i], headers[i+1])
		}
		res, err := r.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := io.ReadAll(res.Body)
		res.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		if res.StatusCode != http.StatusServiceUnavailable || res.Header.Get("Retry-After") == "" || time.Now().After(deadline) {
			return res.StatusCode, resp
		}
		time.Sleep(100 * time.Millisecond) // as Retry-After asks, shorter
	}
}

// getJSON gets url into out, failing unless the status is 200.
func (r *running) getJSON(t *testing.T, url string, out any) {
	t.Helper()
	status, body := r.get(t, url)
	// As the API asks of a client: a 503 (the key's partition moving) is
	// asked again, for up to 10 s.
	for deadline := time.Now().Add(10 * time.Second); status == http.StatusServiceUnavailable && time.Now().Before(deadline); {
		time.Sleep(100 * time.Millisecond)
		status, body = r.get(t, url)
	}
	if status != http.StatusOK {
		t.Fatalf("GET %s: got %d %s, want 200", url, status, body)
	}
	if err := json.Unmarshal(body, out); err != nil {
		t.Fatalf("GET %s: decode %s: %v", url, body, err)
	}
}

type orderView struct {
	OrderID             string `json:"orderId"`
	CustomerID          string `json:"customerId"`
	OrderTotal          int64  `json:"orderTotal"`
	State               string `json:"state"`
	RejectionReason     string `json:"rejectionReason"`
	CancelSagaID        string `json:"cancelSagaId"`
	CancelRefusalReason string `json:"cancelRefusalReason"`
}

type customerView struct {
	CustomerID      string `json:"customerId"`
	Name            string `json:"name"`
	CreditLimit     int64  `json:"creditLimit"`
	AvailableCredit int64  `json:"availableCredit"`
}

type sagaView struct {
	SagaID  string `json:"sagaId"`
	Type    string `json:"type"`
	State   string `json:"state"`
	Step    string `json:"step"`
	History []struct {
		At    time.Time `json:"at"`
		Event string    `json:"event"`
		State string    `json:"state"`
		Step  string    `json:"step"`
	} `json:"history"`
}

func (r *running) createCustomer(t *testing.T, name string, creditLimit int64) string {
	t.Helper()
	var out struct {
		CustomerID string `json:"customerId"`
	}
	r.postJSON(t, r.customer+"/customers", map[string]any{"name": name, "creditLimit": creditLimit}, &out)
	return out.CustomerID
}

func (r *running) createOrder(t *testing.T, customerID string, total int64) string {
	t.Helper()
	var out struct {
		OrderID string `json:"orderId"`
		State   string `json:"state"`
	}
	r.postJSON(t, r.order+"/orders", map[string]any{"customerId": customerID, "orderTotal": total}, &out)
	if out.State != "PENDING" {
		t.Fatalf("new order %s: got state %s, want PENDING", out.OrderID, out.State)
	}
	return out.OrderID
}

// awaitOrderEnd polls the order until its saga has ended: until it is
// neither PENDING nor CANCELLING.
func (r *running) awaitOrderEnd(t *testing.T, id string, within time.Duration) orderView {
	t.Helper()
	var o orderView
	eventually(t, within, func() error {
		r.getJSON(t, r.order+"/orders/"+id, &o)
		if o.State == "PENDING" || o.State == "CANCELLING" {
			return fmt.Errorf("order %s still %s", id, o.State)
		}
		return nil
	})
	return o
}

// cancelOrder posts POST /orders/{id}/cancel, retrying a 503 with
// Retry-After for up to 10 s as the API asks, and returns the status and
// the body: the order, or an error with the order's state.
func (r *running) cancelOrder(t *testing.T, id string, headers ...string) (int, cancelAnswer) {
	t.Helper()
	status, body := r.postRetrying(t, r.order+"/orders/"+id+"/cancel", nil, headers...)
	var a cancelAnswer
	if err := json.Unmarshal(body, &a); err != nil {
		t.Fatalf("POST /orders/%s/cancel: %d, body not JSON: %s", id, status, body)
	}
	return status, a
}

// cancelAnswer is the body of POST /orders/{id}/cancel: the order (202,
// or 200 to the request of an ended cancellation sent again), or an error
// and, for a 409, the order's state.
type cancelAnswer struct {
	orderView
	Error string `json:"error"`
}

// awaitSagaEnd polls the saga until it is COMPLETED or REJECTED.
func (r *running) awaitSagaEnd(t *testing.T, id string, within time.Duration) sagaView {
	t.Helper()
	var s sagaView
	eventually(t, within, func() error {
		status, body := r.get(t, r.sagas+"/sagas/"+id)
		if status != http.StatusOK {
			return fmt.Errorf("saga %s: %d %s", id, status, body)
		}
		if err := json.Unmarshal(body, &s); err != nil {
			return err
		}
		if s.State != "COMPLETED" && s.State != "REJECTED" {
			return fmt.Errorf("saga %s still %s", id, s.State)
		}
		return nil
	})
	return s
}

// rawClients returns a Kafka client and an auto-registering serde on the
// running stack, for a test that writes records as no service would.
func rawClients(t *testing.T, r *running) (*kgo.Client, *serde.Serde) {
	t.Helper()
	client, err := kgo.NewClient(kgo.SeedBrokers(r.stack.Brokers()...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(client.Close)
	s, err := serde.New(srclient.NewSchemaRegistryClient(r.stack.RegistryURL()), serde.Config{AutoRegister: true})
	if err != nil {
		t.Fatal(err)
	}
	return client, s
}
