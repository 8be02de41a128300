package process_test

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kafkasaga/kafkasaga/contracts"
	"github.com/kafkasaga/kafkasaga/contracts/serde"
	"github.com/kafkasaga/kafkasaga/devstack"
	"github.com/kafkasaga/kafkasaga/platform/config"
	"github.com/kafkasaga/kafkasaga/platform/httpserver"
	"github.com/kafkasaga/kafkasaga/platform/process"
)

func quiet() *slog.Logger {
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

func newProcess(t *testing.T, kafka config.Kafka) *process.Process {
	t.Helper()
	p, err := process.New(process.Config{
		Name:     "customer",
		HTTPAddr: "127.0.0.1:0",
		Kafka:    kafka,
		Types:    []serde.Record{&contracts.CustomerRecord{}, &contracts.ReserveCredit{}},
	}, quiet())
	if err != nil {
		t.Fatalf("process.New: %v", err)
	}
	return p
}

// run runs p until the test ends, and then checks that Run returns nil
// within 5 seconds of the cancellation.
func run(t *testing.T, p *process.Process) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		start := time.Now()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run after cancel: got %v, want nil", err)
			}
			t.Logf("Run returned %v after cancel", time.Since(start))
		case <-time.After(5 * time.Second):
			t.Errorf("Run did not return within 5s of cancel")
		}
	})
}

// readyz returns the status of GET /readyz.
func readyz(p *process.Process) int {
	w := httptest.NewRecorder()
	p.HTTP.Handler().ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/readyz", nil))
	return w.Code
}

func waitReady(t *testing.T, p *process.Process) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for readyz(p) != http.StatusOK {
		if time.Now().After(deadline) {
			t.Fatalf("GET /readyz: still %d after 20s, want 200", readyz(p))
		}
		select {
		case <-t.Context().Done():
			t.Fatal("test ended while waiting for readiness")
		case <-time.After(20 * time.Millisecond): // poll interval, not synchronisation
		}
	}
}

func TestValidateReportsEveryMissingSetting(t *testing.T) {
	_, err := process.New(process.Config{}, quiet())
	if err == nil {
		t.Fatal("New with an empty config: got nil error, want one")
	}
	for _, want := range []string{"Name", "HTTPAddr", "KAFKA_BROKERS", "SCHEMA_REGISTRY_URL"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %s", err, want)
		}
	}
}

func TestNewFailsWithoutKafka(t *testing.T) {
	_, err := process.New(process.Config{
		Name: "customer", HTTPAddr: "127.0.0.1:0",
		// Nothing listens on port 1.
		Kafka: config.Kafka{Brokers: []string{"127.0.0.1:1"}, SchemaRegistryURL: "http://127.0.0.1:1"},
	}, quiet())
	if err == nil {
		t.Errorf("New against no broker: got nil error, want one")
	}
}

// A process restores its stores before it reports ready, and stops when its
// context ends.
func TestRunRestoresStateThenBecomesReady(t *testing.T) {
	t.Parallel()
	stack := devstack.StartForTest(t)
	kafka := config.Kafka{Brokers: stack.Brokers(), SchemaRegistryURL: stack.RegistryURL(), AutoRegisterSchemas: true}

	// A first process writes state and is closed without running.
	first := newProcess(t, kafka)
	customers, err := process.NewStore[contracts.CustomerRecord](first, contracts.TopicCustomerState)
	if err != nil {
		t.Fatalf("NewStore: %v", err)
	}
	run(t, first)
	waitReady(t, first)
	want := &contracts.CustomerRecord{CustomerID: "c1", Name: "Ada", CreditLimit: 500}
	if err := customers.Update(t.Context(), "c1", func(v *contracts.CustomerRecord, _ bool) error { *v = *want; return nil }); err != nil {
		t.Fatalf("Update: %v", err)
	}

	// The second one finds it.
	p := newProcess(t, kafka)
	restored, err := process.NewStore[contracts.CustomerRecord](p, contracts.TopicCustomerState)
	if err != nil {
		t.Fatalf("NewStore: %v", err)
	}
	if got := readyz(p); got != http.StatusServiceUnavailable {
		t.Errorf("GET /readyz before Run: got %d, want 503", got)
	}
	run(t, p)
	waitReady(t, p)
	got, ok, err := restored.Get("c1")
	if err != nil || !ok || !reflect.DeepEqual(got, want) {
		t.Errorf("c1 once ready: got %+v ok=%v err=%v, want %+v", got, ok, err, want)
	}
}

// A process's subscriptions consume what its own publisher sends.
func TestRunDeliversSubscribedMessages(t *testing.T) {
	t.Parallel()
	stack := devstack.StartForTest(t)
	p := newProcess(t, config.Kafka{Brokers: stack.Brokers(), SchemaRegistryURL: stack.RegistryURL(), AutoRegisterSchemas: true})
	received := make(chan string, 1)
	if err := p.Subscribe(contracts.TopicCustomerCommands, func(msg *message.Message) error {
		received <- string(msg.Payload)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	looped := make(chan struct{})
	p.Go(func(ctx context.Context) error {
		close(looped)
		<-ctx.Done()
		return nil
	})
	run(t, p)
	waitReady(t, p)

	msg := message.NewMessage(watermill.NewUUID(), []byte("hello"))
	msg.Metadata.Set(contracts.HeaderPartitionKey, "c1")
	if err := p.Publisher.Publish(contracts.TopicCustomerCommands, msg); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	select {
	case got := <-received:
		if got != "hello" {
			t.Errorf("received %q, want hello", got)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("subscribed handler got nothing within 20s")
	}
	select {
	case <-looped:
	case <-time.After(5 * time.Second):
		t.Error("the loop added with Go did not start")
	}
}

// A process told to stop keeps its port open until it has finished what
// it handles and left its group: its peers take a refused connection for a
// dead instance, and evicting it would abort its last commit.
func TestAStoppingProcessKeepsItsPortUntilItLeavesItsGroup(t *testing.T) {
	t.Parallel()
	stack := devstack.StartForTest(t)
	addr := freeAddr(t)
	p, err := process.New(process.Config{Name: "customer", HTTPAddr: addr,
		Kafka: config.Kafka{Brokers: stack.Brokers(), SchemaRegistryURL: stack.RegistryURL(), AutoRegisterSchemas: true},
		Types: []serde.Record{&contracts.ReserveCredit{}}}, quiet())
	if err != nil {
		t.Fatal(err)
	}
	handling, release := make(chan struct{}), make(chan struct{})
	if err := p.Subscribe(contracts.TopicCustomerCommands, func(*message.Message) error {
		close(handling)
		<-release // a handler slow to finish, whatever its context says
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	waitReady(t, p)
	msg := message.NewMessage(watermill.NewUUID(), []byte("slow"))
	msg.Metadata.Set(contracts.HeaderPartitionKey, "c1")
	if err := p.Publisher.Publish(contracts.TopicCustomerCommands, msg); err != nil {
		t.Fatal(err)
	}
	select {
	case <-handling:
	case <-time.After(20 * time.Second):
		t.Fatal("the handler got nothing within 20s")
	}
	cancel()
	for deadline := time.Now().Add(time.Second); time.Now().Before(deadline); {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Errorf("%v after the stop began, with a message in hand: want the port open until the group is left", err)
			break
		}
		conn.Close()
		time.Sleep(20 * time.Millisecond) // poll interval
	}
	close(release)
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return within 10s of the handler's end")
	}
	if conn, err := net.Dial("tcp", addr); err == nil {
		conn.Close()
		t.Error("the port is still open after Run returned")
	}
}

func TestRunReturnsTheErrorOfAFailedRestore(t *testing.T) {
	t.Parallel()
	stack := devstack.StartForTest(t)
	p := newProcess(t, config.Kafka{Brokers: stack.Brokers(), SchemaRegistryURL: stack.RegistryURL(), AutoRegisterSchemas: true})
	if _, err := process.NewStore[contracts.CustomerRecord](p, "no.such.topic"); err != nil {
		t.Fatalf("NewStore: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- p.Run(t.Context()) }()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "no.such.topic") {
			t.Errorf("Run with a store on a missing topic: got %v, want an error naming the topic", err)
		}
	case <-time.After(5 * time.Second): // a failed restore stops Run at once
		t.Fatal("Run did not return within 5s of a failed restore")
	}
	if got := readyz(p); got != http.StatusServiceUnavailable {
		t.Errorf("GET /readyz after a failed restore: got %d, want 503", got)
	}
}

// A registry that asks for credentials gets them from the readiness check
// too, not only from the serde: a process that can use its registry is
// ready.
func TestReadinessUsesTheRegistryCredentials(t *testing.T) {
	t.Parallel()
	stack := devstack.StartForTest(t)
	target, err := url.Parse(stack.RegistryURL())
	if err != nil {
		t.Fatal(err)
	}
	proxy := httputil.NewSingleHostReverseProxy(target)
	guarded := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if user, password, ok := r.BasicAuth(); !ok || user != "saga" || password != "secret" {
			http.Error(w, `{"error_code":401,"message":"Unauthorized"}`, http.StatusUnauthorized)
			return
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(guarded.Close)

	p := newProcess(t, config.Kafka{Brokers: stack.Brokers(), SchemaRegistryURL: guarded.URL,
		RegistryUser: "saga", RegistryPassword: "secret", AutoRegisterSchemas: true})
	run(t, p)
	waitReady(t, p)
}

// A keyed request is answered while a rebalance restores the partitions,
// however long the restore takes: by the key's owner, or with a 503 that
// says to come again, never after the restore.
func TestAKeyedRequestIsAnsweredWhileARebalanceRestores(t *testing.T) {
	t.Parallel()
	stack := devstack.StartForTest(t)
	kafka := config.Kafka{Brokers: stack.Brokers(), SchemaRegistryURL: stack.RegistryURL(), AutoRegisterSchemas: true,
		SessionTimeout: 6 * time.Second}
	restoring := make(chan struct{}, 1)
	gate := make(chan struct{})
	start := func(hold bool) *process.Process {
		p, _ := startKeyed(t, kafka, func(p *process.Process) {
			restores := 0
			p.OnRestored(func(ctx context.Context) error {
				if restores++; hold && restores > 1 { // the rebalance the second instance brings
					restoring <- struct{}{}
					select {
					case <-gate:
					case <-ctx.Done():
					}
				}
				return nil
			})
		})
		return p
	}
	first := start(true)
	defer close(gate) // before run's cleanup, which waits for Run to return
	waitReady(t, first)
	start(false)
	select {
	case <-restoring:
	case <-time.After(30 * time.Second):
		t.Fatal("the second instance brought no rebalance within 30s")
	}
	for i := range 8 {
		if code := getThing(t, first, fmt.Sprint("k", i)).Code; code != http.StatusOK && code != http.StatusServiceUnavailable {
			t.Errorf("GET /things/k%d while restoring: got %d, want 200 or 503", i, code)
		}
	}
}

// A request for a key another instance owns is answered within the
// forward timeout when the group's coordinator does not say who owns it:
// 503 with Retry-After, not a wait for the coordinator.
func TestAKeyedRequestIsAnsweredWhileTheCoordinatorHangs(t *testing.T) {
	t.Parallel()
	both := startTwo(t, 6*time.Second)
	first, theirs, cluster := both.first, both.theirs, both.stack.Cluster()

	release := make(chan struct{})
	t.Cleanup(func() { close(release) }) // before the processes stop
	cluster.ControlKey(int16(kmsg.DescribeGroups), func(kmsg.Request) (kmsg.Response, error, bool) {
		cluster.KeepControl()
		cluster.SleepControl(func() { <-release })
		return nil, nil, false
	})
	// Forwarded while the owners learnt before are fresh (a second), then
	// refused, each request within the forward's timeout.
	for deadline := time.Now().Add(20 * time.Second); ; {
		w := getThing(t, first, theirs)
		if w.Code == http.StatusServiceUnavailable {
			if w.Header().Get("Retry-After") == "" {
				t.Errorf("503 without Retry-After: %s", w.Body)
			}
			break
		}
		if w.Code != http.StatusOK {
			t.Fatalf("GET /things/%s: got %d %s, want 200 or 503", theirs, w.Code, w.Body)
		}
		if time.Now().After(deadline) {
			t.Fatal("still forwarded 20s after the coordinator stopped answering")
		}
	}
}

// An instance cut off from its group's coordinator while its clients
// still reach it answers none of its keys from its state once its lease
// is over, before the group gives them to another instance. franz-go
// learns it later: its heartbeat, unanswered, waits out the request's
// timeout (10 s) first, past a session timeout of 2 s.
func TestAnInstanceItsCoordinatorDoesNotHearServesNothingOnceItsLeaseIsOver(t *testing.T) {
	t.Parallel()
	both := startTwo(t, 2*time.Second)
	stack, cluster := both.stack, both.stack.Cluster()
	first, second, firstAddr, secondAddr, theirs := both.first, both.second, both.firstAddr, both.secondAddr, both.theirs

	var member string
	cl, err := kgo.NewClient(kgo.SeedBrokers(stack.Brokers()...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	d, err := kadm.NewClient(cl).DescribeGroups(t.Context(), "customer")
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range d["customer"].Members {
		if meta, ok := m.Join.AsConsumer(); ok && process.AdvertisedAddr(string(meta.UserData)) == secondAddr {
			member = m.MemberID
		}
	}
	if member == "" {
		t.Fatalf("no member of the group advertises %s", secondAddr)
	}
	hold := make(chan struct{}) // the second's heartbeats, until they are answered blindly
	var holding sync.Once
	stopHolding := func() { holding.Do(func() { close(hold) }) }
	t.Cleanup(stopHolding) // before the processes stop
	holdJoins := make(chan struct{})
	t.Cleanup(func() { close(holdJoins) })
	var blind atomic.Bool         // answer the second's heartbeats without error, unheard
	var blindAnswers atomic.Int32 // how many, of those sent since
	var rejoining atomic.Bool     // the second's client gave its partitions up and joins again
	cluster.ControlKey(int16(kmsg.Heartbeat), func(req kmsg.Request) (kmsg.Response, error, bool) {
		cluster.KeepControl()
		if req.(*kmsg.HeartbeatRequest).MemberID != member {
			return nil, nil, false
		}
		if blind.Load() {
			blindAnswers.Add(1)
		} else {
			cluster.SleepControl(func() { <-hold })
		}
		if blind.Load() { // those held until then too, uncounted
			return &kmsg.HeartbeatResponse{Version: req.GetVersion()}, nil, true
		}
		return nil, nil, false
	})
	// Nor does it hear the second join again, as a new member, once
	// franz-go's held heartbeat timed out (10 s): that member would own
	// partitions again, and answer for them rightly.
	cluster.ControlKey(int16(kmsg.JoinGroup), func(req kmsg.Request) (kmsg.Response, error, bool) {
		cluster.KeepControl()
		for _, proto := range req.(*kmsg.JoinGroupRequest).Protocols {
			var meta kmsg.ConsumerMemberMetadata
			if meta.ReadFrom(proto.Metadata) == nil && process.AdvertisedAddr(string(meta.UserData)) == secondAddr {
				rejoining.Store(true)
				cluster.SleepControl(func() { <-holdJoins })
				break
			}
		}
		return nil, nil, false
	})
	// The group drops the second instance after its session timeout, and
	// the first restores its partitions and answers for them; within 8 s,
	// before franz-go's held heartbeat times out (10 s) and the second
	// gives its partitions up.
	for deadline := time.Now().Add(8 * time.Second); ; {
		if w := getThing(t, first, theirs); w.Code == http.StatusOK && w.Header().Get("X-Answered-By") == firstAddr {
			break
		}
		if time.Now().After(deadline) || rejoining.Load() {
			t.Fatalf("the first instance did not answer for %s within 8s, before the second's client gave its partitions up", theirs)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if w := getThing(t, second, theirs); w.Code == http.StatusOK && w.Header().Get("X-Answered-By") == secondAddr {
		t.Errorf("the second instance answered for %s from its state after the first took it over", theirs)
	}

	// Nor when a coordinator loading the group (moved to another broker)
	// answers its heartbeats without error, blindly, as Apache Kafka's
	// does: the group it loads does not list the second.
	blind.Store(true)
	stopHolding()
	for deadline := time.Now().Add(5 * time.Second); blindAnswers.Load() < 6; { // three of the lease's, or so
		if w := getThing(t, second, theirs); w.Code == http.StatusOK && w.Header().Get("X-Answered-By") == secondAddr {
			t.Fatalf("the second instance answered for %s from its state after heartbeats answered blindly", theirs)
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d heartbeats of the second instance within 5s, want 6", blindAnswers.Load())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if rejoining.Load() {
		t.Fatal("the second instance's client gave its partitions up (its held heartbeat timed out) before its heartbeats were answered blindly: nothing was tested")
	}
}

// pair is two instances of a keyed process on an embedded broker, both
// ready, and a key the second owns.
type pair struct {
	stack                 *devstack.Stack
	first, second         *process.Process
	firstAddr, secondAddr string
	theirs                string // a key the second owns, which the first forwards
}

// startTwo starts two instances of a session timeout of session on an
// embedded broker, whose coordinator's answers a test holds (skipped on
// another Kafka).
func startTwo(t *testing.T, session time.Duration) pair {
	t.Helper()
	stack := devstack.StartForTest(t)
	if stack.Cluster() == nil {
		t.Skip("holding the coordinator's answers needs the embedded broker")
	}
	kafka := config.Kafka{Brokers: stack.Brokers(), SchemaRegistryURL: stack.RegistryURL(), AutoRegisterSchemas: true,
		SessionTimeout: session}
	w := pair{stack: stack}
	w.first, w.firstAddr = startKeyed(t, kafka, nil)
	waitReady(t, w.first)
	w.second, w.secondAddr = startKeyed(t, kafka, nil)
	waitReady(t, w.second)
	w.theirs = keyAnsweredBy(t, w.first, w.secondAddr)
	return w
}

// keyAnsweredBy returns a key that p has the instance at addr answer (p
// itself, or the instance it forwards to), once the group has settled.
func keyAnsweredBy(t *testing.T, p *process.Process, addr string) string {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); ; {
		for i := range 32 {
			if w := getThing(t, p, fmt.Sprint("k", i)); w.Code == http.StatusOK && w.Header().Get("X-Answered-By") == addr {
				return fmt.Sprint("k", i)
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s answered no key itself within 30s", addr)
		}
	}
}

// startKeyed runs an instance of a process on kafka at an address of its
// own, which it returns. It reads customer.commands and answers
// GET /things/{id} of the keys it owns 200, its address in X-Answered-By;
// setup, if not nil, adds to it before it runs.
func startKeyed(t *testing.T, kafka config.Kafka, setup func(*process.Process)) (*process.Process, string) {
	t.Helper()
	addr := freeAddr(t)
	kafka.AdvertisedHTTPAddr = addr
	p, err := process.New(process.Config{Name: "customer", HTTPAddr: addr, Kafka: kafka,
		Types: []serde.Record{&contracts.ReserveCredit{}}}, quiet())
	if err != nil {
		t.Fatalf("process.New: %v", err)
	}
	if err := p.Subscribe(contracts.TopicCustomerCommands, func(*message.Message) error { return nil }); err != nil {
		t.Fatal(err)
	}
	p.HTTP.HandleKeyed("GET /things/{id}", httpserver.PathKey("id"), func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("X-Answered-By", addr)
		w.WriteHeader(http.StatusOK)
	})
	if setup != nil {
		setup(p)
	}
	run(t, p)
	return p, addr
}

// getThing asks p for GET /things/{key} and fails the test unless it
// answers within 5 s: a forward to the key's owner gives up after 3.
func getThing(t *testing.T, p *process.Process, key string) *httptest.ResponseRecorder {
	t.Helper()
	answered := make(chan *httptest.ResponseRecorder, 1)
	go func() {
		w := httptest.NewRecorder()
		p.HTTP.Handler().ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/things/"+key, nil))
		answered <- w
	}()
	select {
	case w := <-answered:
		return w
	case <-time.After(5 * time.Second):
		t.Fatalf("GET /things/%s: no answer within 5s", key)
		return nil
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// A process keeps its stores' records in a directory of its own under
// STATE_DIR, and takes it away when it stops.
func TestTheLocalStateLeavesWithTheProcess(t *testing.T) {
	t.Parallel()
	stack := devstack.StartForTest(t)
	dir := t.TempDir()
	p := newProcess(t, config.Kafka{Brokers: stack.Brokers(), SchemaRegistryURL: stack.RegistryURL(), AutoRegisterSchemas: true,
		StateDir: dir})
	if _, err := process.NewStore[contracts.CustomerRecord](p, contracts.TopicCustomerState); err != nil {
		t.Fatalf("NewStore: %v", err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil || len(entries) != 1 || !strings.HasPrefix(entries[0].Name(), "kafkasaga-customer-") {
		t.Fatalf("STATE_DIR after New: got %v (%v), want one kafkasaga-customer-* directory", entries, err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	waitReady(t, p)
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	if entries, err := os.ReadDir(dir); err != nil || len(entries) != 0 {
		t.Errorf("STATE_DIR after Run returned: got %v (%v), want it empty", entries, err)
	}
}

// A second start at the address of a live instance (the same binary
// started twice on a host, a supervisor that starts the new process before
// the old one is gone) fails to listen and evicts nobody: it took the live
// instance for its dead predecessor, evicted it from the group and fenced
// its transactional ids, and only then failed to listen.
func TestAStartThatCannotListenEvictsNobody(t *testing.T) {
	t.Parallel()
	stack := devstack.StartForTest(t)
	kafka := config.Kafka{Brokers: stack.Brokers(), SchemaRegistryURL: stack.RegistryURL(), AutoRegisterSchemas: true}
	first, addr := startKeyed(t, kafka, nil)
	waitReady(t, first)
	var leaves atomic.Int32
	cluster := stack.Cluster()
	cluster.ControlKey(int16(kmsg.LeaveGroup), func(kmsg.Request) (kmsg.Response, error, bool) {
		cluster.KeepControl()
		leaves.Add(1)
		return nil, nil, false
	})
	kafka.AdvertisedHTTPAddr = addr
	second, err := process.New(process.Config{Name: "customer", HTTPAddr: addr, Kafka: kafka,
		Types: []serde.Record{&contracts.ReserveCredit{}}}, quiet())
	if err != nil {
		t.Fatal(err)
	}
	if err := second.Subscribe(contracts.TopicCustomerCommands, func(*message.Message) error { return nil }); err != nil {
		t.Fatal(err)
	}
	if err := second.Run(t.Context()); err == nil || !strings.Contains(err.Error(), "listen") {
		t.Fatalf("the second start: got %v, want an error that it cannot listen", err)
	}
	if n := leaves.Load(); n != 0 {
		t.Errorf("the second start sent %d LeaveGroup requests, want none: the live instance was evicted", n)
	}
}

// Two live instances given one ADVERTISED_HTTP_ADDR (a copied compose
// service, a Kubernetes Service's name on every replica): each took the
// other for its dead predecessor and evicted it, and the group never
// settled, both instances ready all the while. A predecessor evicted that
// joins again is live: one of them stops, naming the variable.
func TestTwoLiveInstancesOfOneAdvertisedAddressStop(t *testing.T) {
	t.Parallel()
	stack := devstack.StartForTest(t)
	shared := freeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 2)
	for range 2 {
		kafka := config.Kafka{Brokers: stack.Brokers(), SchemaRegistryURL: stack.RegistryURL(), AutoRegisterSchemas: true,
			AdvertisedHTTPAddr: shared}
		p, err := process.New(process.Config{Name: "customer", HTTPAddr: freeAddr(t), Kafka: kafka,
			Types: []serde.Record{&contracts.ReserveCredit{}}}, quiet())
		if err != nil {
			t.Fatal(err)
		}
		if err := p.Subscribe(contracts.TopicCustomerCommands, func(*message.Message) error { return nil }); err != nil {
			t.Fatal(err)
		}
		go func() { done <- p.Run(ctx) }()
	}
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "ADVERTISED_HTTP_ADDR "+shared+" is another live instance's too") {
			t.Errorf("the first Run to return: got %v, want an error that another live instance advertises %s", err, shared)
		}
	case <-time.After(30 * time.Second):
		t.Error("both instances still running after 30 s, evicting each other")
	}
	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Error("the other instance did not stop within 10 s of cancel")
	}
}
