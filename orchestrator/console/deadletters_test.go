package console

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kafkasaga/kafkasaga/contracts"
	"github.com/kafkasaga/kafkasaga/contracts/serde"
)

// letter is newDeadLetter's letter.
func letter(r *kgo.Record, dec Decoder) *DeadLetter {
	d, _ := newDeadLetter(r, dec)
	return d
}

type undecodable struct{}

func (undecodable) Decode([]byte) (serde.Record, error) { return nil, serde.ErrUndecodable }

// TestDeadLettersKeepTheNewestAndPage adds dead letters out of order, from
// several partitions, to a list that keeps 5: it keeps the 5 newest, newest
// first, and pages through them with the cursor.
func TestDeadLettersKeepTheNewestAndPage(t *testing.T) {
	l := &deadLetters{max: 5, dec: undecodable{}}
	for _, i := range []int{3, 0, 7, 1, 6, 2, 5, 4} {
		r := &kgo.Record{Partition: int32(i % 2), Offset: int64(i), Timestamp: t0.Add(time.Duration(i) * time.Second), Value: []byte{byte(i)}}
		l.add(letter(r, l.dec))
	}
	var got []int64
	var after *DeadLetterCursor
	for page := 0; page < 5; page++ {
		list, next := l.page(t.Context(), after, 2)
		for _, d := range list {
			got = append(got, d.Offset)
		}
		if next == nil {
			break
		}
		after = next
	}
	if want := []int64{7, 6, 5, 4, 3}; !slices.Equal(got, want) {
		t.Errorf("pages of 2: got offsets %v, want %v", got, want)
	}
}

// TestADeadLetterIsDecodedOnceTheRegistryAnswers decodes with a registry
// that fails, then answers: the dead letter is raw until then, and
// decoded on the next read.
func TestADeadLetterIsDecodedOnceTheRegistryAnswers(t *testing.T) {
	dec := &flaky{err: errors.New("registry unreachable")}
	l := &deadLetters{max: 10, dec: dec}
	l.add(letter(&kgo.Record{Value: []byte("payload"), Timestamp: t0}, dec))
	list, _ := l.page(t.Context(), nil, 10)
	if list[0].Raw == "" || list[0].Value != nil {
		t.Fatalf("registry down: got raw %q value %s, want raw and no value", list[0].Raw, list[0].Value)
	}
	dec.err = nil
	list, _ = l.page(t.Context(), nil, 10)
	if list[0].Raw != "" || string(list[0].Value) != `{"customerId":"","orderId":"o","amount":0}` || list[0].Record != "ReserveCredit" {
		t.Errorf("registry back: got record %q raw %q value %s, want ReserveCredit decoded", list[0].Record, list[0].Raw, list[0].Value)
	}
}

// flaky decodes every payload as a ReserveCredit, or fails with err.
type flaky struct{ err error }

func (f *flaky) Decode([]byte) (serde.Record, error) {
	if f.err != nil {
		return nil, f.err
	}
	return &contracts.ReserveCredit{OrderID: "o"}, nil
}

// stalled's decodes wait until it is released, as a registry that does not
// answer makes them (5 s each).
type stalled struct {
	calling chan struct{}
	release chan struct{}
}

func (s stalled) Decode([]byte) (serde.Record, error) {
	s.calling <- struct{}{}
	<-s.release
	return nil, errors.New("registry unreachable")
}

// A page that waits on the registry to decode its letters does not hold up
// the follower, which adds the next dead letter meanwhile: it decodes
// outside the list's lock.
func TestAPageWaitingOnTheRegistryDoesNotHoldUpTheFollower(t *testing.T) {
	dec := stalled{calling: make(chan struct{}), release: make(chan struct{})}
	l := &deadLetters{max: 10, dec: undecodable{}}
	l.add(letter(&kgo.Record{Value: []byte("old"), Timestamp: t0}, flakyDown))
	l.dec = dec
	paged := make(chan struct{})
	go func() {
		defer close(paged)
		l.page(t.Context(), nil, 10)
	}()
	<-dec.calling // the page is decoding
	added := make(chan struct{})
	go func() {
		defer close(added)
		l.add(letter(&kgo.Record{Value: nil, Offset: 1, Timestamp: t0.Add(time.Second)}, undecodable{}))
	}()
	select {
	case <-added:
	case <-time.After(5 * time.Second):
		t.Error("the follower's add waited 5s for a page decoding its letters")
	}
	close(dec.release)
	<-paged
	<-added
}

var flakyDown = &flaky{err: errors.New("registry unreachable")}

// A dead letter whose timestamp is past what JSON can write (a producer
// that wrote microseconds for milliseconds) is listed with the latest
// time it can write, rather than break the page it is on.
func TestADeadLetterFromTheFarFutureCanBeShown(t *testing.T) {
	l := &deadLetters{max: 10, dec: undecodable{}}
	l.add(letter(&kgo.Record{Value: []byte("x"), Timestamp: time.UnixMilli(t0.UnixMicro())}, undecodable{}))
	list, _ := l.page(t.Context(), nil, 10)
	if _, err := json.Marshal(list); err != nil {
		t.Fatalf("the page does not encode: %v", err)
	}
}

// counting fails every decode as a registry that does not answer, after
// its timeout, and counts the asks.
type counting struct{ asks *int }

func (c counting) Decode([]byte) (serde.Record, error) {
	*c.asks++
	return nil, errors.New("registry: no answer within 5s")
}

// A page of letters the registry did not decode asks it once, not once a
// letter: each ask may wait the registry client's timeout, so a page of
// 500 waited for up to 40 minutes, and went on after its client left. A
// page whose request ended asks nothing.
func TestAPageAsksAnAbsentRegistryOnce(t *testing.T) {
	asks := 0
	l := &deadLetters{max: 10, dec: undecodable{}}
	for i := range 5 {
		l.add(letter(&kgo.Record{Value: []byte("p"), Offset: int64(i), Timestamp: t0}, flakyDown))
	}
	l.dec = counting{&asks}
	list, _ := l.page(t.Context(), nil, 10)
	if asks != 1 {
		t.Errorf("a page of 5 undecoded letters asked the registry %d times, want once", asks)
	}
	for _, d := range list {
		if d.Raw == "" {
			t.Errorf("letter %d: no raw value", d.Offset)
		}
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	asks = 0
	if list, _ := l.page(ctx, nil, 10); asks != 0 || len(list) != 5 || list[0].Raw == "" {
		t.Errorf("a page whose request ended: asked %d times, %d letters; want none asked, 5 letters raw", asks, len(list))
	}
}

// The follower asks an absent registry once for a while, not once a dead
// letter: each ask may wait the registry client's timeout, and every saga
// record behind the letters waits with it. The letters are kept raw, and
// a page decodes them once the registry is back (those too large to keep
// whole stay raw).
func TestTheFollowerAsksAnAbsentRegistryOnce(t *testing.T) {
	asks := 0
	c := newApplying(t, sagas{})
	c.cfg.DeadLetters = counting{&asks}
	for i := range 5 {
		value := []byte("p")
		if i < 2 {
			value = bytes.Repeat([]byte("p"), maxShown+1)
		}
		if err := c.apply(&kgo.Record{Topic: contracts.TopicDeadLetter, Value: value, Offset: int64(i), Timestamp: t0}); err != nil {
			t.Fatal(err)
		}
	}
	if asks != 1 {
		t.Errorf("5 dead letters, the first 2 large, with the registry away: asked it %d times, want once", asks)
	}
	c.deadLetters.dec = &flaky{}
	list, _ := c.deadLetters.page(t.Context(), nil, 10)
	if len(list) != 5 {
		t.Fatalf("a page once the registry is back: got %d letters, want 5", len(list))
	}
	for _, d := range list {
		if large := d.Offset < 2; large != (d.Record == "" && d.Raw != "") || large == (d.Record == "ReserveCredit") {
			t.Errorf("a page once the registry is back: letter %d (large: %v) is record %q, raw %d bytes; want the small ones decoded, the large ones raw",
				d.Offset, large, d.Record, len(d.Raw))
		}
	}
}

// A dead letter kept undecoded (the registry away) holds a copy of its
// value, not the fetch's buffer it was read in, which holds every record
// of the fetch: a thousand of them held gigabytes.
func TestAnUndecodedDeadLetterKeepsNoFetchBuffer(t *testing.T) {
	fetched := make([]byte, 1<<20)
	r := &kgo.Record{Value: fetched[10:20], Timestamp: t0}
	d, _ := newDeadLetter(r, flakyDown)
	if d.payload == nil || unsafe.SliceData(d.payload) == unsafe.SliceData(r.Value) {
		t.Errorf("the undecoded letter's value: shares the fetch's buffer (or is gone), want a copy")
	}
}

// echo decodes every payload as a ReserveCredit whose order id is the
// payload.
type echo struct{}

func (echo) Decode(b []byte) (serde.Record, error) {
	return &contracts.ReserveCredit{OrderID: string(b)}, nil
}

// A dead letter may be 900 KB, a thousand are kept on every instance and a
// A dead letters' cursor is the "next" of an earlier answer, exactly: one
// with anything after it, or not a cursor at all, is a 400.
func TestADeadLettersCursorIsRefusedUnlessWhole(t *testing.T) {
	c := newApplying(t, sagas{})
	c.caughtUp.Store(true)
	for before, want := range map[string]int{
		base64.RawURLEncoding.EncodeToString([]byte("1:0:5")):          http.StatusOK,
		base64.RawURLEncoding.EncodeToString([]byte("1:0:5 and more")): http.StatusBadRequest,
		base64.RawURLEncoding.EncodeToString([]byte("1:0")):            http.StatusBadRequest,
		"not base64!": http.StatusBadRequest,
	} {
		rec := httptest.NewRecorder()
		c.listDeadLetters(rec, httptest.NewRequest(http.MethodGet, "/api/deadletters?before="+url.QueryEscape(before), nil))
		if rec.Code != want {
			t.Errorf("before=%s: got %d %s, want %d", before, rec.Code, rec.Body, want)
		}
	}
}

// page lists up to 500: of its payload, and of its record's JSON when
// decoded, only the first maxShown bytes are kept and shown, said cut,
// with the payload's whole size. Its replay reads it from Kafka, whole.
func TestALargeDeadLetterIsKeptCut(t *testing.T) {
	payload := bytes.Repeat([]byte("x"), 900<<10)
	whole, _ := json.Marshal(&contracts.ReserveCredit{OrderID: string(payload)})
	for name, dec := range map[string]Decoder{"decoded": echo{}, "undecodable": undecodable{}, "registry away": flakyDown} {
		c := newApplying(t, sagas{})
		c.cfg.DeadLetters, c.deadLetters.dec = dec, dec
		c.caughtUp.Store(true)
		if err := c.apply(&kgo.Record{Topic: contracts.TopicDeadLetter, Value: payload, Timestamp: t0}); err != nil {
			t.Fatal(err)
		}
		if kept := c.deadLetters.list[0]; len(kept.payload)+len(kept.Raw)+len(kept.Value) > 2*maxShown {
			t.Errorf("%s: keeps %d bytes of payload, %d of raw, %d of value; want %d at most in all",
				name, len(kept.payload), len(kept.Raw), len(kept.Value), 2*maxShown)
		}
		rec := httptest.NewRecorder()
		c.listDeadLetters(rec, httptest.NewRequest(http.MethodGet, "/api/deadletters?limit=500", nil))
		if rec.Code != http.StatusOK || rec.Body.Len() > 2*maxShown {
			t.Errorf("%s: the page is %d, %d bytes; want 200, %d bytes at most", name, rec.Code, rec.Body.Len(), 2*maxShown)
			continue
		}
		var page struct {
			DeadLetters []struct {
				Value json.RawMessage
				Raw   string
				Cut   bool
				Size  int
			}
		}
		if err := json.Unmarshal(rec.Body.Bytes(), &page); err != nil || len(page.DeadLetters) != 1 {
			t.Fatalf("%s: the page %.200s: %v, want one letter", name, rec.Body, err)
		}
		d := page.DeadLetters[0]
		var shown, want string
		if name == "decoded" {
			_ = json.Unmarshal(d.Value, &shown)
			want = string(whole[:maxShown])
		} else {
			b, _ := base64.StdEncoding.DecodeString(d.Raw)
			shown, want = string(b), string(payload[:maxShown])
		}
		if !d.Cut || d.Size != len(payload) || shown != want {
			t.Errorf("%s: shown %d bytes (%.20q), cut %v, size %d; want its first %d bytes, cut, size %d",
				name, len(shown), shown, d.Cut, d.Size, maxShown, len(payload))
		}
	}
	l := &deadLetters{max: 10, dec: echo{}}
	l.add(letter(&kgo.Record{Value: []byte("p"), Timestamp: t0}, echo{}))
	if list, _ := l.page(t.Context(), nil, 10); list[0].Cut || list[0].Size != 1 || !strings.Contains(string(list[0].Value), `"orderId":"p"`) {
		t.Errorf("a small letter: got value %s, cut %v, size %d; want it whole, not cut, size 1", list[0].Value, list[0].Cut, list[0].Size)
	}
}

// A start reads back enough of each partition of the dead-letter topic for
// the newest KeepDeadLetters: a letter committed alone is followed by its
// transaction's marker, and reading back KeepDeadLetters offsets listed
// half as many.
func TestAStartListsTheNewestDeadLettersCommittedOneByOne(t *testing.T) {
	opts, _ := newCluster(t, kfake.SeedTopics(1, "x.sagas", "x.sagas.ended", contracts.TopicDeadLetter))
	producer, err := kgo.NewClient(append(slices.Clone(opts), kgo.TransactionalID("letters"))...)
	if err != nil {
		t.Fatal(err)
	}
	defer producer.Close()
	const keep = 10
	for i := range 2 * keep {
		if err := producer.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		if err := producer.ProduceSync(t.Context(), &kgo.Record{Topic: contracts.TopicDeadLetter, Value: []byte{byte(i)}}).FirstErr(); err != nil {
			t.Fatal(err)
		}
		if err := producer.EndTransaction(t.Context(), kgo.TryCommit); err != nil {
			t.Fatal(err)
		}
	}
	c := newConsole(t, Config{Kgo: opts, Sagas: sagas{}, KeepDeadLetters: keep})
	runUntilCaughtUp(t, c)
	list, _ := c.deadLetters.page(t.Context(), nil, 2*keep)
	if len(list) != keep || list[0].Offset != 2*(2*keep-1) {
		t.Errorf("listed %d dead letters, the newest at offset %d; want %d, the newest at %d", len(list), list[0].Offset, keep, 2*(2*keep-1))
	}
}

// A dead letter's key and headers are kept cut too: any producer may
// write a record of large ones, which its letter keeps whole, and a
// thousand letters of 800 KB of headers held as much as the payloads the
// cut above bounds. The dead-lettering's own headers are kept whatever the
// others take.
func TestALetterOfLargeHeadersIsKeptCut(t *testing.T) {
	c := newApplying(t, sagas{})
	c.cfg.DeadLetters, c.deadLetters.dec = undecodable{}, undecodable{}
	c.caughtUp.Store(true)
	big := bytes.Repeat([]byte("h"), 100<<10)
	r := &kgo.Record{Topic: contracts.TopicDeadLetter, Key: big, Timestamp: t0}
	for i := range 8 {
		r.Headers = append(r.Headers, kgo.RecordHeader{Key: fmt.Sprint("x-", i), Value: big})
	}
	r.Headers = append(r.Headers, kgo.RecordHeader{Key: contracts.HeaderDeadLetterTopic, Value: []byte("customer.commands")})
	if err := c.apply(r); err != nil {
		t.Fatal(err)
	}
	kept := c.deadLetters.list[0]
	n := len(kept.Key)
	for k, v := range kept.Headers {
		n += len(k) + len(v)
	}
	rec := httptest.NewRecorder()
	c.listDeadLetters(rec, httptest.NewRequest(http.MethodGet, "/api/deadletters?limit=500", nil))
	if n > 2*maxShown || rec.Body.Len() > 2*maxShown {
		t.Errorf("keeps %d bytes of key and headers, the page is %d bytes; want %d at most", n, rec.Body.Len(), 2*maxShown)
	}
	if !kept.Clipped || kept.SourceTopic != "customer.commands" {
		t.Errorf("clipped %t, source topic %q; want true and customer.commands", kept.Clipped, kept.SourceTopic)
	}
}

// TestAPageOfDeadLettersIsBoundedInBytes: a page holds as many letters as
// fit in maxPage bytes of JSON, whatever the limit asked, and its next
// lists the rest, each letter once. JSON writes a control byte in six,
// so letters of them, each kept cut, made a page of 500 about 150 MB.
func TestAPageOfDeadLettersIsBoundedInBytes(t *testing.T) {
	c := newApplying(t, sagas{})
	c.cfg.DeadLetters, c.deadLetters.dec = undecodable{}, undecodable{}
	c.caughtUp.Store(true)
	big := bytes.Repeat([]byte{1}, 100<<10)
	const letters = 40
	for o := range letters {
		r := &kgo.Record{Topic: contracts.TopicDeadLetter, Key: big, Value: big, Timestamp: t0.Add(time.Duration(o) * time.Second), Offset: int64(o)}
		for i := range 8 {
			r.Headers = append(r.Headers, kgo.RecordHeader{Key: fmt.Sprint("x-", i), Value: big})
		}
		if err := c.apply(r); err != nil {
			t.Fatal(err)
		}
	}
	seen := map[int64]bool{}
	before, pages := "", 0
	for {
		rec := httptest.NewRecorder()
		c.listDeadLetters(rec, httptest.NewRequest(http.MethodGet, "/api/deadletters?limit=500&before="+before, nil))
		var page deadLetterList
		if err := json.Unmarshal(rec.Body.Bytes(), &page); err != nil {
			t.Fatal(err)
		}
		if pages++; rec.Body.Len() > maxPage+maxPage/8 || len(page.DeadLetters) == 0 {
			t.Fatalf("page %d: %d bytes, %d letters; want at most about %d bytes, one letter at least", pages, rec.Body.Len(), len(page.DeadLetters), maxPage)
		}
		for _, d := range page.DeadLetters {
			if seen[d.Offset] {
				t.Fatalf("letter %d listed twice", d.Offset)
			}
			seen[d.Offset] = true
		}
		if before = page.Next; before == "" {
			break
		}
	}
	if len(seen) != letters || pages < 2 {
		t.Errorf("%d letters in %d pages; want all %d, in more than one page", len(seen), pages, letters)
	}
}

// TestADeadLettersCursorListsTheOlderOnes: a letter's cursor, which its
// page keeps to list again a letter it let go, lists those older than it.
func TestADeadLettersCursorListsTheOlderOnes(t *testing.T) {
	c := newApplying(t, sagas{})
	c.cfg.DeadLetters, c.deadLetters.dec = undecodable{}, undecodable{}
	c.caughtUp.Store(true)
	for o := range 5 {
		if err := c.apply(&kgo.Record{Topic: contracts.TopicDeadLetter, Value: []byte("x"), Timestamp: t0.Add(time.Duration(o) * time.Second), Offset: int64(o)}); err != nil {
			t.Fatal(err)
		}
	}
	cursor := c.deadLetters.list[1].Cursor // offset 3: the second newest
	rec := httptest.NewRecorder()
	c.listDeadLetters(rec, httptest.NewRequest(http.MethodGet, "/api/deadletters?before="+cursor, nil))
	var page deadLetterList
	if err := json.Unmarshal(rec.Body.Bytes(), &page); err != nil {
		t.Fatal(err)
	}
	var got []int64
	for _, d := range page.DeadLetters {
		got = append(got, d.Offset)
	}
	if !slices.Equal(got, []int64{2, 1, 0}) {
		t.Errorf("listed after %s: %v; want 2, 1, 0", cursor, got)
	}
}
