package console

import (
	"bytes"
	"cmp"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"slices"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/hamba/avro/v2"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kafkasaga/kafkasaga/contracts"
	"github.com/kafkasaga/kafkasaga/contracts/serde"
)

// DeadLetter is a message of the dead-letter topic: the JSON of GET
// /api/deadletters and of its stream's events.
type DeadLetter struct {
	Partition       int32             `json:"partition"` // in the dead-letter topic
	Offset          int64             `json:"offset"`
	Timestamp       time.Time         `json:"timestamp"`
	Key             string            `json:"key"`
	Headers         map[string]string `json:"headers"`
	SourceTopic     string            `json:"sourceTopic"`     // where it was consumed from
	SourcePartition int32             `json:"sourcePartition"` // -1 if the header is missing
	SourceOffset    int64             `json:"sourceOffset"`    // -1 if the header is missing
	Handler         string            `json:"handler"`         // that gave up on it
	Error           string            `json:"error"`           // why
	Record          string            `json:"record"`          // its record name; "" if it could not be decoded
	// Value is the record decoded, or null; if Cut, a string of the first
	// maxShown bytes of its JSON.
	Value json.RawMessage `json:"value"`
	Raw   string          `json:"raw"`  // base64 of the payload (its first maxShown bytes) when it could not be decoded
	Cut   bool            `json:"cut"`  // Value or Raw holds the first maxShown bytes only
	Size  int             `json:"size"` // of the payload, in bytes
	// Clipped says the key or a header holds its first maxField bytes
	// only, or headers past maxShown bytes of them were left out.
	Clipped bool `json:"clipped"`
	// Cursor is what GET /api/deadletters takes as before to list the
	// letters older than this one (a page that let it go lists it again).
	Cursor string `json:"cursor"`

	payload []byte // kept until decoded, to try again when the registry did not answer
}

// maxShown bounds what a dead letter keeps of its payload and of its
// record's JSON: a letter may be 900 KB, every instance keeps a thousand,
// and a page lists up to 500. A replay reads the letter from Kafka, whole.
const maxShown = 64 << 10

// maxField bounds what a dead letter keeps of its key, and of each
// header's name and value: the dead-lettering's own headers are kept
// whatever the others take, of maxShown bytes in all.
const maxField = 4 << 10

// clip returns b as a string, its first maxField bytes if longer, and
// whether it was.
func clip(b []byte) (string, bool) {
	if len(b) > maxField {
		return string(b[:maxField]), true
	}
	return string(b), false
}

// Decoder decodes a payload in the Confluent wire format: a serde.Serde
// that knows every record of the contracts.
type Decoder interface {
	Decode(data []byte) (serde.Record, error)
}

// latestJSONTime is the latest time JSON can write (RFC 3339 has four
// digits of year).
var latestJSONTime = time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC)

// jsonTime is t, in UTC, within the years JSON can write: a producer may
// write any timestamp (microseconds for milliseconds, say), a host any
// clock, and one time JSON cannot write would break every page it is on.
func jsonTime(t time.Time) time.Time {
	t = t.UTC()
	if t.After(latestJSONTime) {
		return latestJSONTime
	}
	if t.Year() < 0 {
		return time.Time{}
	}
	return t
}

// newDeadLetter reads the dead letter r, decoded if dec is not nil, and
// reports whether the registry did not answer. A letter left undecoded
// keeps a copy of the value: the record's shares the buffer of the whole
// fetch it came in. A value too large to keep whole is never decoded
// later: it is shown raw, cut.
func newDeadLetter(r *kgo.Record, dec Decoder) (d *DeadLetter, away bool) {
	ts := jsonTime(r.Timestamp)
	d = &DeadLetter{Partition: r.Partition, Offset: r.Offset, Timestamp: ts,
		Headers: map[string]string{}, SourcePartition: -1, SourceOffset: -1, Size: len(r.Value), payload: r.Value,
		Cursor: encodeDeadLetterCursor(DeadLetterCursor{Timestamp: ts.UnixMilli(), Partition: r.Partition, Offset: r.Offset})}
	// The key and the headers as the payload is: any producer may write a
	// record of large ones, which its letter keeps whole.
	d.Key, d.Clipped = clip(r.Key)
	left := maxShown
	for _, h := range r.Headers {
		k, kcut := clip([]byte(h.Key))
		v, vcut := clip(h.Value)
		if !slices.Contains(contracts.DeadLetterHeaders, h.Key) {
			if left -= len(k) + len(v); left < 0 {
				d.Clipped = true
				continue
			}
		}
		d.Headers[k] = v
		d.Clipped = d.Clipped || kcut || vcut
	}
	d.SourceTopic = d.Headers[contracts.HeaderDeadLetterTopic]
	d.Handler = d.Headers[contracts.HeaderDeadLetterHandler]
	d.Error = d.Headers[contracts.HeaderDeadLetterError]
	if p, err := strconv.ParseInt(d.Headers[contracts.HeaderDeadLetterPartition], 10, 32); err == nil {
		d.SourcePartition = int32(p)
	}
	if o, err := strconv.ParseInt(d.Headers[contracts.HeaderDeadLetterOffset], 10, 64); err == nil {
		d.SourceOffset = o
	}
	if dec == nil {
		d.showRaw() // until a page decodes it
	} else if away = d.decode(dec); !away { // if away, decode showed it raw
		return d, false
	}
	if len(d.payload) > maxShown {
		d.payload = nil
	} else {
		d.payload = bytes.Clone(d.payload)
	}
	return d, away
}

// showRaw sets Raw to the payload, cut to maxShown bytes.
func (d *DeadLetter) showRaw() {
	p := d.payload
	d.Cut = len(p) > maxShown
	if d.Cut {
		p = p[:maxShown]
	}
	d.Raw = base64.StdEncoding.EncodeToString(p)
}

// decode decodes the payload when its schema is known; a payload that can
// never be decoded is kept as raw, and one the registry did not answer for
// is tried again on the next read.
func (d *DeadLetter) decode(dec Decoder) (retry bool) {
	if d.payload == nil {
		return false
	}
	d.showRaw()
	rec, err := dec.Decode(d.payload)
	if err != nil {
		if errors.Is(err, serde.ErrUndecodable) {
			d.payload = nil
			return false
		}
		return true
	}
	value, err := json.Marshal(rec)
	if err != nil {
		d.payload = nil
		return false
	}
	if named, ok := rec.Schema().(avro.NamedSchema); ok {
		d.Record = named.Name()
	}
	d.Value, d.Raw, d.Cut, d.payload = value, "", false, nil
	if len(value) > maxShown {
		// A part of JSON is no JSON: shown as a string, cut where a
		// character starts.
		n := maxShown
		for n > 0 && !utf8.RuneStart(value[n]) {
			n--
		}
		d.Value, _ = json.Marshal(string(value[:n])) // a string: cannot fail
		d.Cut = true
	}
	return false
}

// DeadLetterCursor is where a page of dead letters ends.
type DeadLetterCursor struct {
	Timestamp int64 // Unix milliseconds
	Partition int32
	Offset    int64
}

// done is a context that has ended.
var done = func() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}()

// deadLetters keeps the newest dead letters, newest first.
type deadLetters struct {
	mu   sync.Mutex
	max  int
	list []*DeadLetter
	dec  Decoder
}

func newestLetterFirst(a, b *DeadLetter) int {
	return cmp.Or(-a.Timestamp.Compare(b.Timestamp), -cmp.Compare(a.Partition, b.Partition), -cmp.Compare(a.Offset, b.Offset))
}

// add keeps d if it is among the newest, and reports whether it did.
func (l *deadLetters) add(d *DeadLetter) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	i, found := slices.BinarySearchFunc(l.list, d, newestLetterFirst)
	if found || i >= l.max {
		return false
	}
	l.list = slices.Insert(l.list, i, d)
	if len(l.list) > l.max {
		l.list[len(l.list)-1] = nil
		l.list = l.list[:l.max]
	}
	return true
}

// maxPage bounds the JSON of a page of dead letters, which is made whole
// in memory: a letter keeps up to about 130 KB, and JSON writes a control
// byte of it in six.
const maxPage = 4 << 20

// page returns up to limit dead letters after the cursor, newest first,
// as many as fit in maxPage bytes of JSON (one at least), and the cursor
// of the next page, nil on the last.
func (l *deadLetters) page(ctx context.Context, after *DeadLetterCursor, limit int) ([]DeadLetter, *DeadLetterCursor) {
	l.mu.Lock()
	i := 0
	if after != nil {
		pivot := &DeadLetter{Timestamp: time.UnixMilli(after.Timestamp).UTC(), Partition: after.Partition, Offset: after.Offset}
		var found bool
		i, found = slices.BinarySearchFunc(l.list, pivot, newestLetterFirst)
		if found {
			i++
		}
	}
	out, listed := []DeadLetter{}, []*DeadLetter{}
	for ; i < len(l.list) && len(out) < limit; i++ {
		out, listed = append(out, *l.list[i]), append(listed, l.list[i])
	}
	last := i == len(l.list) || len(out) == 0
	l.mu.Unlock()
	l.decode(ctx, out, listed)
	size := 0
	for n, d := range out {
		b, _ := json.Marshal(d) // of strings, numbers and JSON: cannot fail
		if size += len(b); size > maxPage && n > 0 {
			out, last = out[:n], false
			break
		}
	}
	if last {
		return out, nil
	}
	end := out[len(out)-1]
	return out, &DeadLetterCursor{Timestamp: end.Timestamp.UnixMilli(), Partition: end.Partition, Offset: end.Offset}
}

// decode decodes the copies in out of the letters listed whose registry
// did not answer before, outside the list's lock: the registry may take
// seconds, and the follower adds letters meanwhile. A listed letter is
// never changed (the stream may be encoding it): a decoded copy replaces
// it. It stops at the first the registry does not answer for (the rest
// are left raw, for the next read), or once ctx ends: each may wait the
// registry client's timeout, and a page holds up to 500.
func (l *deadLetters) decode(ctx context.Context, out []DeadLetter, listed []*DeadLetter) {
	var decoded []int
	for j := range out {
		if out[j].payload == nil {
			continue
		}
		if ctx.Err() != nil {
			out[j].Raw = base64.StdEncoding.EncodeToString(out[j].payload)
			continue
		}
		if out[j].decode(l.dec) {
			ctx = done // the registry is away: the rest raw, without asking
		}
		if out[j].payload == nil {
			decoded = append(decoded, j)
		}
	}
	if len(decoded) == 0 {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, j := range decoded {
		if k := slices.Index(l.list, listed[j]); k >= 0 {
			d := out[j]
			l.list[k] = &d
		}
	}
}
