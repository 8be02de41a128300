package system_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kafkasaga/kafkasaga/system"
	"github.com/kafkasaga/kafkasaga/system/internal/load"
)

// TestSeveralInstancesShareTheWork runs two instances of every process from
// their binaries, each owning part of the partitions. Under a steady stream
// of orders, the second instance of each process is SIGKILLed and started
// again, in turn; then an instance of the customer service is paused
// (SIGSTOP) past its session timeout, so that its partitions move while it
// does not know, and resumed. Every order ends as its inputs dictate, no
// saga is stuck, no customer's credit is off by a cent (a credit reserved
// twice, by the zombie and by the new owner, would show), every
// instance answers for every key, forwarding to the owner, makes an order
// sent without an Idempotency-Key itself, and the
// orchestrator's instances, between which the partitions moved, count no
// saga in flight (saga_instances_running) once every saga ended.
func TestSeveralInstancesShareTheWork(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs every binary; skipped with -short")
	}
	ps := startInstances(t, buildBinaries(t), 2, 2)
	r := ps.r
	plan, checkPlan := newPlan(t, r, 240)
	k := 1 + len(system.Processes) // before, and one per killed instance
	parts := split(plan, k+2)      // then while paused, after
	killInTurn(t, ps, 1, parts[:k])

	zombie := ps.instances["customer"][1]
	zombie.pause()
	// Until the group notices, the zombie's keys are forwarded to an owner
	// that does not answer: the client gets a 503 with Retry-After within
	// a few seconds, never a hang or a wrong answer.
	for _, p := range plan[:10] {
		if p.wantReason != "UNKNOWN_CUSTOMER" {
			checkAnswersOrRetryAfter(t, r, r.customer+"/customers/"+p.customer)
		}
	}
	postOrders(t, r, parts[k])
	awaitMembers(t, ps.brokers, "customer", 1) // the group gave its partitions to the other instance
	// Every order posted so far ended: the credit the zombie is asked for
	// stays put while it answers.
	awaitOrdersEnd(t, r, slices.Concat(parts[:k+1]...), 60*time.Second)
	checkAZombieAnswersNothingStale(t, ps, zombie, plan)
	postOrders(t, r, parts[k+1])

	checkPlan(120 * time.Second)
	checkAllRunning(t, ps)
	checkEveryInstanceAnswers(t, ps, plan)
	checkACreateWithoutAKeyIsMadeWhereItArrives(t, ps)
	checkNoSagaInFlight(t, ps)
}

// checkACreateWithoutAKeyIsMadeWhereItArrives posts orders without an
// Idempotency-Key to each order instance, as the bench's clients do (a
// 503 sent again under the key its answer carries): each is made there,
// under a key the instance draws for an id it owns. One in all may be
// forwarded: each POST finds no id of its instance's half of the
// partitions in its 16 draws once in 65,536 (httpserver's drawTries);
// creates never drawn again are forwarded half the time.
func checkACreateWithoutAKeyIsMadeWhereItArrives(t *testing.T, ps *procs) {
	t.Helper()
	forwarded := func(base string) float64 {
		t.Helper()
		families, err := load.Metrics(t.Context(), http.DefaultClient, base)
		if err != nil {
			t.Fatal(err)
		}
		var n float64
		for _, m := range families["http_forwarded_total"].GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "outcome" && l.GetValue() == "forwarded" {
					n += m.GetCounter().GetValue()
				}
			}
		}
		return n
	}
	var n float64
	for _, p := range ps.instances["order"] {
		base := baseOf(t, p)
		api := load.NewAPI([]string{base}, []string{base}, 1)
		before := forwarded(base)
		for range 10 {
			if _, err := api.CreateOrder(t.Context(), "nobody", 1); err != nil {
				t.Fatalf("POST /orders without an Idempotency-Key to %s: %v", p.name, err)
			}
		}
		api.Close()
		n += forwarded(base) - before
	}
	if n > 1 {
		t.Errorf("the order instances forwarded %v of the 10 orders posted to each without an Idempotency-Key, want one at most", n)
	}
}

// checkAZombieAnswersNothingStale resumes the zombie with a GET of every
// customer of the plan waiting on its socket, sent before it runs again: it
// answers each as the instance that owns them now does (it forwards the
// request), or 503 with Retry-After, never from the credit it held before
// its pause. Its group went on without it; it learns so only at its next
// heartbeat.
func checkAZombieAnswersNothingStale(t *testing.T, ps *procs, zombie *proc, plan []plannedOrder) {
	t.Helper()
	owner := baseOf(t, ps.instances["customer"][0])
	customers := map[string]bool{}
	for _, p := range plan {
		if p.wantReason != "UNKNOWN_CUSTOMER" {
			customers[p.customer] = true
		}
	}
	type asked struct {
		customer, now string
		conn          net.Conn
	}
	var sent []asked
	for c := range customers {
		a := asked{customer: c, now: getBody(t, ps.r, owner, "/customers/"+c)}
		// The kernel accepts the connection and keeps the request for the
		// paused process.
		conn, err := net.Dial("tcp", strings.TrimPrefix(baseOf(t, zombie), "http://"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		if _, err := fmt.Fprintf(conn, "GET /customers/%s HTTP/1.1\r\nHost: zombie\r\nConnection: close\r\n\r\n", c); err != nil {
			t.Fatal(err)
		}
		a.conn = conn
		sent = append(sent, a)
	}
	zombie.resume()
	for _, a := range sent {
		if err := a.conn.SetReadDeadline(time.Now().Add(10 * time.Second)); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(bufio.NewReader(a.conn), nil)
		if err != nil {
			t.Errorf("GET /customers/%s of the zombie: %v", a.customer, err)
			continue
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		switch {
		case err != nil:
			t.Errorf("GET /customers/%s of the zombie: %v", a.customer, err)
		case resp.StatusCode == http.StatusServiceUnavailable && resp.Header.Get("Retry-After") != "":
		case resp.StatusCode != http.StatusOK:
			t.Errorf("GET /customers/%s of the zombie: %d %s, want 200 or 503 with Retry-After", a.customer, resp.StatusCode, body)
		case reencoded(t, body) != a.now:
			t.Errorf("GET /customers/%s of the zombie: %s, want what its owner answers, %s", a.customer, body, a.now)
		}
	}
}

// reencoded is a JSON body re-encoded, so that two answers compare as
// values.
func reencoded(t *testing.T, body []byte) string {
	t.Helper()
	var v any
	if err := json.Unmarshal(body, &v); err != nil {
		t.Fatalf("%s: %v", body, err)
	}
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// checkNoSagaInFlight checks that every orchestrator instance shows
// saga_instances_running of the Create Order saga's version 1, and that
// they count no saga in flight: every saga has ended.
func checkNoSagaInFlight(t *testing.T, ps *procs) {
	t.Helper()
	eventually(t, 30*time.Second, func() error {
		for _, p := range ps.instances["orchestrator"] {
			base := baseOf(t, p)
			if _, body := ps.r.get(t, base+"/metrics"); !strings.Contains(string(body), `saga_instances_running{saga_type="CreateOrder",version="1"}`) {
				return fmt.Errorf("%s: /metrics has no saga_instances_running of CreateOrder version 1", p.name)
			}
			if n := metric(t, base, "saga_instances_running"); n != 0 {
				return fmt.Errorf("%s: saga_instances_running sums to %v, want 0 once every saga ended", p.name, n)
			}
		}
		return nil
	})
}

// TestThreeInstancesSurviveAKillEach runs three instances of every
// process; under a stream of orders, the last instance of each process is
// SIGKILLed and started again, in turn, so that its partitions move to two
// owners and back. Every order ends as planned, the credit holds to the
// cent.
func TestThreeInstancesSurviveAKillEach(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs every binary; skipped with -short")
	}
	ps := startInstances(t, buildBinaries(t), 3, 3)
	plan, checkPlan := newPlan(t, ps.r, 150)
	killInTurn(t, ps, 2, split(plan, 1+len(system.Processes)))
	checkPlan(120 * time.Second)
	checkAllRunning(t, ps)
}

// TestADeadInstanceLeavesItsGroupAtOnce runs instances whose session
// timeout is five minutes, so that only their peers can make a dead one
// leave its group in time: a SIGKILLed instance, whose port then refuses
// connections, is evicted by the others; an instance restarted in place of
// the only one, by itself. Both go on serving every order.
func TestADeadInstanceLeavesItsGroupAtOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs every binary; skipped with -short")
	}
	ps := startInstances(t, buildBinaries(t), 2, 2, "KAFKA_SESSION_TIMEOUT=5m")
	plan, checkPlan := newPlan(t, ps.r, 60)
	parts := split(plan, 3)
	names := system.Names()
	postOrders(t, ps.r, parts[0])
	for _, name := range names {
		ps.instances[name][1].kill()
	}
	for _, name := range names {
		awaitMembers(t, ps.brokers, name, 1) // within a minute: not by the session timeout
	}
	postOrders(t, ps.r, parts[1])
	for _, name := range names {
		only := ps.instances[name][0]
		only.kill()
		only.start()
		only.awaitReady(60 * time.Second) // its dead predecessor would hold every partition for five
	}
	postOrders(t, ps.r, parts[2])
	checkPlan(120 * time.Second)
}

// killInTurn posts parts[0], then, for each process in turn, SIGKILLs its
// instance i, posts the next part while it is down, and starts it again.
func killInTurn(t *testing.T, ps *procs, i int, parts [][]plannedOrder) {
	t.Helper()
	postOrders(t, ps.r, parts[0])
	awaitAnyEnded(t, ps.r, parts[0])
	for j, name := range system.Names() {
		p := ps.instances[name][i]
		p.kill()
		postOrders(t, ps.r, parts[1+j])
		p.start()
		p.awaitReady(60 * time.Second)
	}
}

// split cuts plan into n parts of about the same size, in order.
func split(plan []plannedOrder, n int) [][]plannedOrder {
	parts := make([][]plannedOrder, n)
	for i := range parts {
		parts[i] = plan[i*len(plan)/n : (i+1)*len(plan)/n]
	}
	return parts
}

// checkAllRunning fails for every instance that exited by itself.
func checkAllRunning(t *testing.T, ps *procs) {
	t.Helper()
	for _, p := range ps.all() {
		if !p.running() {
			t.Errorf("%s exited by itself: %s", p.name, p.cmd.ProcessState)
		}
	}
}

// TestScaleOutRollAndScaleIn runs every process as one instance, scales
// each to three under a stream of orders, replaces one instance the way a
// rolling deploy does (the new instance starts, then the old one stops),
// and scales back to one instance, the replacement. The orders end as
// planned and the credit holds to the cent.
func TestScaleOutRollAndScaleIn(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs every binary; skipped with -short")
	}
	ps := startInstances(t, buildBinaries(t), 4, 1)
	plan, checkPlan := newPlan(t, ps.r, 160)
	parts := split(plan, 4) // at 1, at 3, while rolling, at 1 again
	names := system.Names()
	each := func(i int, do func(p *proc)) {
		for _, name := range names {
			do(ps.instances[name][i])
		}
	}

	postOrders(t, ps.r, parts[0])
	for i := 1; i <= 2; i++ {
		each(i, (*proc).start)
	}
	for i := 1; i <= 2; i++ {
		each(i, func(p *proc) { p.awaitReady(60 * time.Second) })
	}
	postOrders(t, ps.r, parts[1])

	// The first instances serve ps.r: the replacement is the fourth, and
	// the requests go on reaching the system through the second.
	each(3, (*proc).start)
	each(3, func(p *proc) { p.awaitReady(60 * time.Second) })
	ps.r.order, ps.r.customer, ps.r.sagas = baseOf(t, ps.instances["order"][1]), baseOf(t, ps.instances["customer"][1]), baseOf(t, ps.instances["orchestrator"][1])
	each(0, (*proc).stop)
	postOrders(t, ps.r, parts[2])

	ps.r.order, ps.r.customer, ps.r.sagas = baseOf(t, ps.instances["order"][3]), baseOf(t, ps.instances["customer"][3]), baseOf(t, ps.instances["orchestrator"][3])
	each(1, (*proc).stop)
	each(2, (*proc).stop)
	postOrders(t, ps.r, parts[3])
	checkPlan(120 * time.Second)
}

// checkEveryInstanceAnswers asks the second instance of every process for
// keys of the plan: it answers the same as the first, forwarding to the
// owner where it is not.
func checkEveryInstanceAnswers(t *testing.T, ps *procs, plan []plannedOrder) {
	t.Helper()
	r := ps.r
	// Every instance answers for every key: the same body as the first.
	for name, path := range map[string]func(p plannedOrder) string{
		"order":        func(p plannedOrder) string { return "/orders/" + p.id },
		"customer":     func(p plannedOrder) string { return "/customers/" + p.customer },
		"orchestrator": func(p plannedOrder) string { return "/sagas/" + p.id },
	} {
		first, second := ps.instances[name][0], ps.instances[name][1]
		for _, p := range plan[:40] {
			if p.wantReason == "UNKNOWN_CUSTOMER" && name == "customer" {
				continue
			}
			want := getBody(t, r, baseOf(t, first), path(p))
			if got := getBody(t, r, baseOf(t, second), path(p)); got != want {
				t.Errorf("%s: GET %s: got %s from %s, want %s as from %s", name, path(p), got, second.name, want, first.name)
			}
		}
	}
}

// checkAnswersOrRetryAfter checks that GET url answers 200, or 503 with
// Retry-After, within 5 seconds.
func checkAnswersOrRetryAfter(t *testing.T, r *running, url string) {
	t.Helper()
	start := time.Now()
	resp, err := r.client.Get(url)
	if err != nil {
		t.Errorf("GET %s: %v", url, err)
		return
	}
	resp.Body.Close()
	took := time.Since(start)
	switch {
	case took > 5*time.Second:
		t.Errorf("GET %s: answered after %s, want within 5s", url, took)
	case resp.StatusCode == http.StatusServiceUnavailable && resp.Header.Get("Retry-After") == "":
		t.Errorf("GET %s: 503 without Retry-After", url)
	case resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusServiceUnavailable:
		t.Errorf("GET %s: got %d, want 200 or 503", url, resp.StatusCode)
	}
}

// awaitMembers waits until the consumer group is stable with n members.
func awaitMembers(t *testing.T, brokers, group string, n int) {
	t.Helper()
	client, err := kgo.NewClient(kgo.SeedBrokers(strings.Split(brokers, ",")...))
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	eventually(t, 60*time.Second, func() error {
		groups, err := kadm.NewClient(client).DescribeGroups(t.Context(), group)
		if err != nil {
			return err
		}
		g := groups[group]
		if g.State != "Stable" || len(g.Members) != n {
			return fmt.Errorf("group %s: %s with %d members, want Stable with %d", group, g.State, len(g.Members), n)
		}
		return nil
	})
}

// baseOf returns the base URL of an instance, from its environment.
func baseOf(t *testing.T, p *proc) string {
	t.Helper()
	for _, kv := range p.env {
		if addr, ok := strings.CutPrefix(kv, "HTTP_ADDR="); ok {
			return "http://" + addr
		}
	}
	t.Fatalf("%s has no HTTP_ADDR", p.name)
	return ""
}

// getBody returns the body of a 200 answer to GET base+path, re-encoded so
// that two answers compare as values.
func getBody(t *testing.T, r *running, base, path string) string {
	t.Helper()
	var body []byte
	eventually(t, 10*time.Second, func() error {
		status, b, err := r.try(http.MethodGet, base+path, nil)
		if err != nil {
			return err
		}
		if status != http.StatusOK {
			return fmt.Errorf("GET %s%s: got %d %s, want 200", base, path, status, b)
		}
		body = b
		return nil
	})
	return reencoded(t, body)
}
