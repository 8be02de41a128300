package system_test

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/riferrei/srclient"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kafkasaga/kafkasaga/contracts"
	"github.com/kafkasaga/kafkasaga/contracts/serde"
	"github.com/kafkasaga/kafkasaga/orchestrator/createorder"
	"github.com/kafkasaga/kafkasaga/system"
)

// consoleSaga is a saga of GET /api/sagas and of its stream.
type consoleSaga struct {
	SagaID        string    `json:"sagaId"`
	Type          string    `json:"type"`
	Version       int       `json:"version"`
	State         string    `json:"state"`
	Step          string    `json:"step"`
	Attempt       int       `json:"attempt"`
	FailureReason string    `json:"failureReason"`
	StartedAt     time.Time `json:"startedAt"`
	UpdatedAt     time.Time `json:"updatedAt"`
	Deadline      string    `json:"deadline"`
	Overdue       bool      `json:"overdue"`
	Retrying      bool      `json:"retrying"`
}

type consoleList struct {
	Sagas []consoleSaga `json:"sagas"`
	Next  string        `json:"next"`
	Total int           `json:"total"`
}

// listSagas gets one page of GET /api/sagas with the query, from base (an
// orchestrator's URL); the index answers 503 until it has read the topics.
func listSagas(r *running, base, query string) (consoleList, error) {
	var l consoleList
	status, body, err := r.try(http.MethodGet, base+"/api/sagas?"+query, nil)
	if err != nil {
		return l, err
	}
	if status != http.StatusOK {
		return l, fmt.Errorf("GET /api/sagas?%s: %d %s", query, status, body)
	}
	return l, json.Unmarshal(body, &l)
}

// ids returns the saga ids of a page.
func (l consoleList) ids() []string {
	var ids []string
	for _, s := range l.Sagas {
		ids = append(ids, s.SagaID)
	}
	return ids
}

// sharedBroker says whether the tests run on a broker that keeps the
// sagas of the tests before (KAFKA_BROKERS): they are older than this
// test's, so a list newest first starts with this test's, and counts may
// be higher.
// createOrderSteps names the steps of the Create Order saga in order: a
// step added to it (docs/adding-a-saga-step.md) changes no test here.
func createOrderSteps() []string {
	var names []string
	for _, s := range createorder.Definition().Steps {
		names = append(names, s.Name)
	}
	return names
}

func sharedBroker() bool { return os.Getenv("KAFKA_BROKERS") != "" }

// checkNewest checks that the page starts with want, newest first, and
// that its total counts them: exactly, unless the broker is shared.
func checkNewest(t *testing.T, what string, l consoleList, want []string) {
	t.Helper()
	got := l.ids()
	if sharedBroker() {
		got = got[:min(len(got), len(want))]
	}
	if !slices.Equal(got, want) || l.Total < len(want) || (!sharedBroker() && (l.Total != len(want) || l.Next != "")) {
		t.Errorf("%s: got %v total %d next %q, want %v total %d and no next", what, l.ids(), l.Total, l.Next, want, len(want))
	}
}

// TestConsoleListsSagas runs sagas of both types to each of their ends and
// lists them through the console's API: newest first, by type, state, step,
// age and id prefix, page by page with the cursor, the totals counting what
// matches, and a 400 naming the allowed values for any value it does not
// know. GET /sagas/{id} shows the saga's times and each transition's
// attempt.
func TestConsoleListsSagas(t *testing.T) {
	r := startSystem(t)
	rich := r.createCustomer(t, "Rich", 5_000_000)
	poor := r.createCustomer(t, "Poor", 1_000)
	// One after the other, so that they start in this order.
	ended := func(customer string, total int64) string {
		id := r.createOrder(t, customer, total)
		r.awaitOrderEnd(t, id, 30*time.Second)
		return id
	}
	approved := ended(rich, 10_000)
	rejected := ended(poor, 5_000)
	declined := ended(rich, paymentLimit+1)
	status, cancel := r.cancelOrder(t, approved)
	if status != http.StatusAccepted {
		t.Fatalf("cancel %s: got %d %+v, want 202", approved, status, cancel)
	}
	cancelled := cancel.CancelSagaID
	r.awaitSagaEnd(t, cancelled, 30*time.Second)
	all := []string{cancelled, declined, rejected, approved} // newest first

	var list consoleList
	eventually(t, 30*time.Second, func() error {
		var err error
		if list, err = listSagas(r, r.sagas, ""); err != nil {
			return err
		}
		if len(list.Sagas) < 4 || !slices.Equal(list.ids()[:4], all) || slices.ContainsFunc(list.Sagas[:4], func(s consoleSaga) bool {
			return s.State != "COMPLETED" && s.State != "REJECTED"
		}) {
			return fmt.Errorf("got %+v, want %v all ended, newest first", list, all)
		}
		return nil
	})
	checkNewest(t, "no filter", list, all)
	for _, s := range list.Sagas[:4] {
		if s.StartedAt.IsZero() || s.UpdatedAt.Before(s.StartedAt) || s.Deadline != "" || s.Step != "" || s.Overdue || s.Retrying {
			t.Errorf("ended saga %+v: want its times, and no deadline, step, overdue or retrying", s)
		}
	}

	tests := []struct {
		query string
		want  []string
	}{
		{"type=CreateOrder", []string{declined, rejected, approved}},
		{"type=CancelOrder&state=COMPLETED", []string{cancelled}},
		{"state=REJECTED", []string{declined, rejected}},
		{"state=RUNNING", nil},
		{"type=CreateOrder&state=REJECTED&minAge=0s", []string{declined, rejected}},
		{"minAge=1h", nil},
		{"q=" + approved[:8], []string{approved}},
		{"q=" + approved + "&type=CancelOrder", nil},
	}
	for _, tt := range tests {
		l, err := listSagas(r, r.sagas, tt.query)
		if err != nil {
			t.Fatal(err)
		}
		checkNewest(t, tt.query, l, tt.want)
	}

	// Page by page, one saga a page, with the cursor.
	var paged []string
	for query := "limit=1"; ; {
		l, err := listSagas(r, r.sagas, query)
		if err != nil {
			t.Fatal(err)
		}
		if len(l.Sagas) != 1 || l.Total != list.Total {
			t.Fatalf("%s: got %+v, want one saga of %d", query, l, list.Total)
		}
		paged = append(paged, l.ids()...)
		if l.Next == "" || len(paged) == 4 {
			break
		}
		query = "limit=1&before=" + url.QueryEscape(l.Next)
	}
	if !slices.Equal(paged, all) {
		t.Errorf("pages of one: got %v, want %v", paged, all)
	}

	bad := []struct {
		query   string
		allowed []string // some of what the answer must allow
	}{
		{"type=Nope", []string{"CreateOrder", "CancelOrder"}},
		{"state=DONE", []string{"RUNNING", "COMPENSATING", "COMPLETED", "REJECTED"}},
		{"step=nope", []string{"reserve_credit", "authorize_payment", "refund_payment", "cancel_order"}},
		{"minAge=yesterday", nil},
		{"minAge=-5m", nil},
		{"limit=0", nil},
		{"limit=501", nil},
		{"limit=ten", nil},
		{"before=not-a-cursor", nil},
		{"color=red", []string{"type", "state", "step", "minAge", "q", "limit", "before"}},
	}
	for _, tt := range bad {
		status, body := r.get(t, r.sagas+"/api/sagas?"+tt.query)
		var answer struct {
			Error   string   `json:"error"`
			Allowed []string `json:"allowed"`
		}
		if err := json.Unmarshal(body, &answer); err != nil || status != http.StatusBadRequest || answer.Error == "" || len(answer.Allowed) == 0 {
			t.Errorf("%s: got %d %s, want 400 with an error and what is allowed", tt.query, status, body)
			continue
		}
		for _, a := range tt.allowed {
			if !slices.Contains(answer.Allowed, a) {
				t.Errorf("%s: allowed %v lacks %s", tt.query, answer.Allowed, a)
			}
		}
	}

	var types []struct {
		Type    string   `json:"type"`
		Version int      `json:"version"`
		Steps   []string `json:"steps"`
	}
	r.getJSON(t, r.sagas+"/api/sagatypes", &types)
	if steps := createOrderSteps(); len(types) != 2 || types[0].Type != "CreateOrder" || !slices.Equal(types[0].Steps, steps) ||
		types[1].Type != "CancelOrder" || types[1].Version < 1 {
		t.Errorf("saga types: got %+v, want CreateOrder's steps in order, %v, then CancelOrder", types, steps)
	}

	// The saga's page: its times, and each transition's attempt.
	var s struct {
		StartedAt  time.Time `json:"startedAt"`
		UpdatedAt  time.Time `json:"updatedAt"`
		Deadline   *string   `json:"deadline"`
		WaitingFor *string   `json:"waitingFor"`
		Overdue    bool      `json:"overdue"`
		History    []struct {
			At      time.Time `json:"at"`
			Step    string    `json:"step"`
			Attempt int       `json:"attempt"`
		} `json:"history"`
	}
	r.getJSON(t, r.sagas+"/sagas/"+declined, &s)
	if s.StartedAt.IsZero() || !s.UpdatedAt.Equal(s.History[len(s.History)-1].At) || !s.StartedAt.Equal(s.History[0].At) ||
		s.Deadline == nil || *s.Deadline != "" || s.WaitingFor == nil || *s.WaitingFor != "" || s.Overdue {
		t.Errorf("GET /sagas/%s: got %+v, want its first and latest times, and empty deadline and waitingFor once ended", declined, s)
	}
	for _, h := range s.History {
		if want := map[bool]int{true: 0, false: 1}[h.Step == ""]; h.Attempt != want {
			t.Errorf("GET /sagas/%s: transition %+v has attempt %d, want %d (every command answered at once)", declined, h, h.Attempt, want)
		}
	}
}

// TestConsoleShowsASagaWaiting runs without the payment service: the saga
// waits for AuthorizePayment, re-sent on each timeout, and the console
// lists it RUNNING on authorize_payment, retrying, its attempt rising,
// while GET /sagas/{id} names the command it waits for and its deadline.
func TestConsoleShowsASagaWaiting(t *testing.T) {
	r := startSystem(t, func(c *system.Config) {
		c.Services = without("payment")
		c.Orchestrator.StepTimeout = 300 * time.Millisecond
		c.Orchestrator.StepMaxAttempts = 100
	})
	id := r.createOrder(t, r.createCustomer(t, "Ada", 100_000), 5_000)
	eventually(t, 30*time.Second, func() error {
		l, err := listSagas(r, r.sagas, "state=RUNNING&step=authorize_payment&type=CreateOrder")
		if err != nil {
			return err
		}
		if len(l.Sagas) == 0 || l.Sagas[0].SagaID != id || !l.Sagas[0].Retrying || l.Sagas[0].Attempt < 3 || l.Sagas[0].Deadline == "" {
			return fmt.Errorf("got %+v, want %s retrying on its third attempt or later, with a deadline", l, id)
		}
		return nil
	})
	var s struct {
		State      string `json:"state"`
		Attempt    int    `json:"attempt"`
		Deadline   string `json:"deadline"`
		WaitingFor string `json:"waitingFor"`
		History    []struct {
			Event   string `json:"event"`
			Step    string `json:"step"`
			Attempt int    `json:"attempt"`
		} `json:"history"`
	}
	r.getJSON(t, r.sagas+"/sagas/"+id, &s)
	if _, err := time.Parse(time.RFC3339, s.Deadline); err != nil || s.WaitingFor != "AuthorizePayment" || s.State != "RUNNING" {
		t.Fatalf("GET /sagas/%s: got %+v, want RUNNING, waiting for AuthorizePayment, with an RFC 3339 deadline", id, s)
	}
	last := s.History[len(s.History)-1]
	if last.Step != "authorize_payment" || last.Attempt != s.Attempt {
		t.Errorf("latest transition %+v: want authorize_payment at the saga's attempt %d", last, s.Attempt)
	}
	for i, h := range s.History[1:] {
		if h.Event == "timeout" && h.Step == s.History[i].Step && h.Attempt != s.History[i].Attempt+1 {
			t.Errorf("transition %d %+v: a re-send after %+v, want the attempt after its", i+1, h, s.History[i])
		}
	}
}

// sse reads Server-Sent Events from url into a channel until the test ends.
type event struct{ name, data string }

func openStream(t *testing.T, url string) <-chan event {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("GET %s: got %d %s, want 200 text/event-stream", url, resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	events := make(chan event, 1024)
	go func() {
		defer resp.Body.Close()
		defer close(events)
		var e event
		for scan := bufio.NewScanner(resp.Body); scan.Scan(); {
			line := scan.Text()
			switch {
			case strings.HasPrefix(line, "event: "):
				e.name = strings.TrimPrefix(line, "event: ")
			case strings.HasPrefix(line, "data: "):
				e.data = strings.TrimPrefix(line, "data: ")
			case line == "" && e.name != "":
				events <- e
				e = event{}
			}
		}
	}()
	return events
}

// awaitEvent reads events until match accepts one.
func awaitEvent(t *testing.T, events <-chan event, within time.Duration, match func(event) bool) {
	t.Helper()
	deadline := time.After(within)
	for {
		select {
		case e, ok := <-events:
			if !ok {
				t.Fatal("the stream ended")
			}
			if match(e) {
				return
			}
		case <-deadline:
			t.Fatalf("no matching event within %s", within)
		}
	}
}

// TestConsoleStreamsTransitions opens the sagas' stream, then runs a saga:
// each of its transitions is an event "saga" with its summary, to its
// end; the stream ends when the orchestrator stops.
func TestConsoleStreamsTransitions(t *testing.T) {
	r := startSystem(t)
	eventually(t, 30*time.Second, func() error { _, err := listSagas(r, r.sagas, ""); return err }) // caught up
	events := openStream(t, r.sagas+"/api/sagas/stream")
	id := r.createOrder(t, r.createCustomer(t, "Ada", 100_000), 5_000)
	var steps []string
	awaitEvent(t, events, 30*time.Second, func(e event) bool {
		var s consoleSaga
		if e.name != "saga" || json.Unmarshal([]byte(e.data), &s) != nil {
			t.Fatalf("event %+v: want a saga event with its summary", e)
		}
		if s.SagaID != id {
			return false
		}
		steps = append(steps, s.Step)
		return s.State == "COMPLETED"
	})
	// The state and archive topics are read side by side: a transition
	// read after the saga's end is not news, so the events may skip one,
	// never reorder them.
	want := append(createOrderSteps()[1:], "") // the first is the start's
	for i, j := 0, 0; i < len(steps); i, j = i+1, j+1 {
		for j < len(want) && want[j] != steps[i] {
			j++
		}
		if j == len(want) {
			t.Fatalf("steps of the events: got %q, want them in the order of %q", steps, want)
		}
	}
	if len(steps) < 2 {
		t.Errorf("steps of the events: got %q, want a transition before the end", steps)
	}

	// The stream ends with the process, which stops at once.
	r.stop()
	for deadline := time.After(10 * time.Second); ; {
		select {
		case _, open := <-events:
			if !open {
				return
			}
		case <-deadline:
			t.Fatal("the stream is open 10 s after its process stopped")
		}
	}
}

type consoleDeadLetter struct {
	Partition       int32             `json:"partition"`
	Offset          int64             `json:"offset"`
	Timestamp       time.Time         `json:"timestamp"`
	Key             string            `json:"key"`
	Headers         map[string]string `json:"headers"`
	SourceTopic     string            `json:"sourceTopic"`
	SourcePartition int32             `json:"sourcePartition"`
	SourceOffset    int64             `json:"sourceOffset"`
	Handler         string            `json:"handler"`
	Error           string            `json:"error"`
	Record          string            `json:"record"`
	Value           json.RawMessage   `json:"value"`
	Raw             string            `json:"raw"`
}

// TestConsoleShowsDeadLetters writes a payload that is no Avro and a
// command where a reply is expected: both are dead-lettered, and the
// console shows each with where it came from and why, the command decoded
// and the other as it was, on the page and on the stream.
func TestConsoleShowsDeadLetters(t *testing.T) {
	r := startSystem(t)
	eventually(t, 30*time.Second, func() error { _, err := listSagas(r, r.sagas, ""); return err })
	events := openStream(t, r.sagas+"/api/deadletters/stream")

	client, s := rawClients(t, r)
	command, err := s.Encode(contracts.TopicCreateOrderReplies, &contracts.ReserveCredit{OrderID: "dead-order", CustomerID: "c", Amount: 7})
	if err != nil {
		t.Fatal(err)
	}
	garbage := []byte("not avro at all")
	written := map[string]*kgo.Record{}
	keys := map[string]string{"garbage": "garbage-" + uuid.NewString(), "command": "command-" + uuid.NewString()}
	for name, value := range map[string][]byte{"garbage": garbage, "command": command} {
		key := keys[name]
		rec := &kgo.Record{Topic: contracts.TopicCreateOrderReplies, Key: []byte(key), Value: value}
		if err := client.ProduceSync(t.Context(), rec).FirstErr(); err != nil {
			t.Fatal(err)
		}
		written[key] = rec
	}

	var letters map[string]consoleDeadLetter // by key
	eventually(t, 30*time.Second, func() error {
		var page struct {
			DeadLetters []consoleDeadLetter `json:"deadLetters"`
			Next        string              `json:"next"`
		}
		r.getJSON(t, r.sagas+"/api/deadletters", &page)
		letters = map[string]consoleDeadLetter{}
		for i, d := range page.DeadLetters {
			letters[d.Key] = d
			if i > 0 && d.Timestamp.After(page.DeadLetters[i-1].Timestamp) {
				t.Errorf("dead letter %d is newer than the one before it: want newest first", i)
			}
		}
		if _, ok := letters[keys["garbage"]]; !ok {
			return fmt.Errorf("no dead letter %s among %d", keys["garbage"], len(letters))
		}
		if _, ok := letters[keys["command"]]; !ok {
			return fmt.Errorf("no dead letter %s among %d", keys["command"], len(letters))
		}
		return nil
	})
	for _, key := range keys {
		d, rec := letters[key], written[key]
		if d.SourceTopic != rec.Topic || d.SourcePartition != rec.Partition || d.SourceOffset != rec.Offset || d.Handler == "" || d.Error == "" ||
			d.Headers[contracts.HeaderDeadLetterTopic] != rec.Topic {
			t.Errorf("%s: got %+v, want from %s/%d/%d with its handler and error", key, d, rec.Topic, rec.Partition, rec.Offset)
		}
	}
	if d := letters[keys["garbage"]]; d.Record != "" || string(d.Value) != "null" || d.Raw != base64.StdEncoding.EncodeToString(garbage) {
		t.Errorf("garbage: got record %q value %s raw %q, want no record, a null value and the payload in base64", d.Record, d.Value, d.Raw)
	}
	var cmd contracts.ReserveCredit
	if d := letters[keys["command"]]; d.Record != "ReserveCredit" || d.Raw != "" || json.Unmarshal(d.Value, &cmd) != nil || cmd.OrderID != "dead-order" || cmd.Amount != 7 {
		t.Errorf("command: got record %q value %s raw %q, want ReserveCredit decoded", d.Record, d.Value, d.Raw)
	}
	got := map[string]bool{}
	awaitEvent(t, events, 10*time.Second, func(e event) bool {
		var d consoleDeadLetter
		if e.name != "deadletter" || json.Unmarshal([]byte(e.data), &d) != nil {
			t.Fatalf("event %+v: want a deadletter event", e)
		}
		got[d.Key] = true
		return got[keys["garbage"]] && got[keys["command"]]
	})

	status, body := r.get(t, r.sagas+"/api/deadletters?limit=1")
	var page struct {
		DeadLetters []consoleDeadLetter `json:"deadLetters"`
		Next        string              `json:"next"`
	}
	if err := json.Unmarshal(body, &page); err != nil || status != http.StatusOK || len(page.DeadLetters) != 1 || page.Next == "" {
		t.Fatalf("limit=1: got %d %s, want one dead letter and a next", status, body)
	}
	var second struct {
		DeadLetters []consoleDeadLetter `json:"deadLetters"`
	}
	r.getJSON(t, r.sagas+"/api/deadletters?limit=1&before="+url.QueryEscape(page.Next), &second)
	if len(second.DeadLetters) != 1 || second.DeadLetters[0].Key == page.DeadLetters[0].Key {
		t.Errorf("the second page: got %+v, want the other dead letter", second.DeadLetters)
	}
	if status, body := r.get(t, r.sagas+"/api/deadletters?limit=x"); status != http.StatusBadRequest || !strings.Contains(string(body), `"allowed"`) {
		t.Errorf("limit=x: got %d %s, want 400 with what is allowed", status, body)
	}
}

// TestConsoleCountsPerMinute runs sagas to each end and reads the counts
// of the last minutes: one entry a minute, zeroes included, adding up to
// the sagas started, completed and rejected.
func TestConsoleCountsPerMinute(t *testing.T) {
	r := startSystem(t)
	rich := r.createCustomer(t, "Rich", 5_000_000)
	ids := []string{r.createOrder(t, rich, 1_000), r.createOrder(t, rich, 2_000), r.createOrder(t, rich, paymentLimit+1)}
	for _, id := range ids {
		r.awaitSagaEnd(t, id, 30*time.Second)
	}
	type minute struct {
		At                           time.Time `json:"at"`
		Started, Completed, Rejected int
	}
	eventually(t, 30*time.Second, func() error {
		var stats struct {
			Minutes []minute `json:"minutes"`
		}
		status, body, err := r.try(http.MethodGet, r.sagas+"/api/stats?minutes=10", nil)
		if err != nil || status != http.StatusOK {
			return fmt.Errorf("GET /api/stats: %d %s %v", status, body, err)
		}
		if err := json.Unmarshal(body, &stats); err != nil {
			return err
		}
		if len(stats.Minutes) != 10 {
			return fmt.Errorf("got %d minutes, want 10", len(stats.Minutes))
		}
		var sum minute
		for i, m := range stats.Minutes {
			if m.At.Second() != 0 || (i > 0 && !m.At.Equal(stats.Minutes[i-1].At.Add(time.Minute))) {
				return fmt.Errorf("minute %d at %s: want one a minute, oldest first", i, m.At)
			}
			sum.Started, sum.Completed, sum.Rejected = sum.Started+m.Started, sum.Completed+m.Completed, sum.Rejected+m.Rejected
		}
		if sum.Started < 3 || sum.Completed < 2 || sum.Rejected < 1 || (!sharedBroker() && (sum.Started != 3 || sum.Completed != 2 || sum.Rejected != 1)) {
			return fmt.Errorf("counts add up to %+v, want 3 started, 2 completed, 1 rejected", sum)
		}
		return nil
	})
	for _, q := range []string{"minutes=0", "minutes=1441", "minutes=many", "hours=1"} {
		if status, body := r.get(t, r.sagas+"/api/stats?"+q); status != http.StatusBadRequest || !strings.Contains(string(body), `"allowed"`) {
			t.Errorf("%s: got %d %s, want 400 with what is allowed", q, status, body)
		}
	}
}

// TestEveryOrchestratorInstanceListsEverySaga runs a second orchestrator
// instance beside the system's: the two share the sagas' partitions, and
// each lists every saga, whichever owns it. Stopped, the second commits
// its console's checkpoint of the state topics (the offsets of the group
// orchestrator-console, each naming its topic's id) and writes the
// snapshot of its stats' closed minutes, through the registry; started
// again, it reads them from there and lists every saga still.
func TestEveryOrchestratorInstanceListsEverySaga(t *testing.T) {
	began := time.Now()
	var cfg system.Config
	r := startSystem(t, func(c *system.Config) { cfg = *c })
	cfg.Services = []string{"orchestrator"}
	second := freeAddrs(t, 1)[0]
	cfg.Orchestrator.HTTPAddr = second
	_, stop := runInBackground(t, func(ctx context.Context) error { return system.Run(ctx, cfg, quietLogger()) })
	eventually(t, 60*time.Second, func() error { return r.ready("http://" + second) })
	brokers := strings.Join(r.stack.Brokers(), ",")
	awaitMembers(t, brokers, "orchestrator", 2)

	rich := r.createCustomer(t, "Rich", 50_000_000)
	var ids []string
	for range 12 {
		ids = append(ids, r.createOrder(t, rich, 1_000))
	}
	listsThem := func(base string) {
		t.Helper()
		eventually(t, 60*time.Second, func() error {
			l, err := listSagas(r, base, "type=CreateOrder&state=COMPLETED&limit=500")
			if err != nil {
				return err
			}
			for _, id := range ids {
				if !slices.Contains(l.ids(), id) {
					return fmt.Errorf("%s lists %d sagas COMPLETED (total %d), not %s, one of the %d placed", base, len(l.Sagas), l.Total, id, len(ids))
				}
			}
			return nil
		})
	}
	for _, base := range []string{r.sagas, "http://" + second} {
		listsThem(base)
	}

	stop()
	client, err := kgo.NewClient(kgo.SeedBrokers(strings.Split(brokers, ",")...))
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	committed, err := kadm.NewClient(client).FetchOffsets(t.Context(), "orchestrator-console")
	if err != nil {
		t.Fatal(err)
	}
	if got := committed[contracts.TopicCreateOrderSagas]; len(got) != contracts.Partitions {
		t.Errorf("the console's checkpoint holds %d partitions of %s, want %d", len(got), contracts.TopicCreateOrderSagas, contracts.Partitions)
	}
	for p, o := range committed[contracts.TopicCreateOrderSagas] {
		if o.Err != nil || o.Metadata == "" {
			t.Errorf("the console's checkpoint of %s/%d: %+v, want an offset naming its topic's id", contracts.TopicCreateOrderSagas, p, o)
		}
	}
	if s := statsSnapshot(t, r, client); s.ClosedBefore.Before(began.Add(-10*time.Minute)) || s.ClosedBefore.After(time.Now().Add(-5*time.Minute)) {
		t.Errorf("the stats' snapshot closes the minutes before %v, want five to ten minutes before the test's end", s.ClosedBefore)
	}
	runInBackground(t, func(ctx context.Context) error { return system.Run(ctx, cfg, quietLogger()) })
	listsThem("http://" + second)
}

// statsSnapshot returns the latest snapshot of the console's stats in
// console.stats, decoded through the registry.
func statsSnapshot(t *testing.T, r *running, client *kgo.Client) *contracts.ConsoleStats {
	t.Helper()
	ends, err := kadm.NewClient(client).ListEndOffsets(t.Context(), contracts.TopicConsoleStats)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		t.Fatal(err)
	}
	sd, err := serde.New(srclient.NewSchemaRegistryClient(r.stack.RegistryURL()), serde.Config{}, &contracts.ConsoleStats{})
	if err != nil {
		t.Fatal(err)
	}
	var latest *contracts.ConsoleStats
	ends.Each(func(end kadm.ListedOffset) {
		if end.Offset == 0 {
			return
		}
		reader, err := kgo.NewClient(kgo.SeedBrokers(r.stack.Brokers()...),
			kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{end.Topic: {end.Partition: kgo.NewOffset().At(end.Offset - 1)}}))
		if err != nil {
			t.Fatal(err)
		}
		defer reader.Close()
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		defer cancel()
		fetches := reader.PollFetches(ctx)
		if err := fetches.Err(); err != nil {
			t.Fatalf("read %s/%d: %v", end.Topic, end.Partition, err)
		}
		for _, rec := range fetches.Records() {
			v, err := sd.Decode(rec.Value)
			if err != nil {
				t.Fatalf("decode the stats' snapshot: %v", err)
			}
			if s, ok := v.(*contracts.ConsoleStats); ok && (latest == nil || s.ClosedBefore.After(latest.ClosedBefore)) {
				latest = s
			}
		}
	})
	if latest == nil {
		t.Fatalf("no snapshot of the console's stats in %s", contracts.TopicConsoleStats)
	}
	return latest
}
