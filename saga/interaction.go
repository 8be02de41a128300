package saga

import (
	"fmt"
	"reflect"
)

// Interaction declares a command once: C is its record type (a pointer, as
// the generated types are records), Topic the topic it travels on, Key the
// record key it is sent with, and Replies one value of each record type the
// participant may answer with. R is the command's reply interface, which
// saga/cmd/interactions generates from the declaration: only the declared
// replies implement it, so a participant's handler, which returns an R, can
// return nothing else. A step names the interaction of its command, and its
// replies must be the declared ones.
type Interaction[C, R Record] struct {
	Topic   string
	Key     func(cmd C) string // the aggregate the participant serializes on
	Replies []R
}

// Declared is an Interaction whatever its types, as lists of declarations
// (contracts.Interactions) hold it.
type Declared interface {
	declared() declaration
}

func (i Interaction[C, R]) declared() declaration {
	d := declaration{command: recordOf[C](), topic: i.Topic}
	d.name = recordName(d.command.Schema(), false)
	if i.Key != nil {
		d.key = func(r Record) string { return i.Key(r.(C)) }
	}
	for _, r := range i.Replies {
		d.replies = append(d.replies, r)
	}
	return d
}

// declaration is what an Interaction declares, untyped.
type declaration struct {
	name    string // the command's record name, e.g. AuthorizePayment
	command Record // a zero command
	topic   string
	key     func(Record) string
	replies []Record
}

// check reports what makes a declaration unusable.
func (d declaration) check() error {
	switch {
	case d.topic == "":
		return fmt.Errorf("interaction %s: no topic", d.name)
	case d.key == nil:
		return fmt.Errorf("interaction %s: no key", d.name)
	case len(d.replies) == 0:
		return fmt.Errorf("interaction %s: no replies, so it could never be answered", d.name)
	}
	return nil
}

// Commands returns the commands declared on topic, each once: the records a
// command topic carries.
func Commands(topic string, declared ...Declared) []Record {
	var records []Record
	seen := map[string]bool{}
	for _, i := range declared {
		d := i.declared()
		if name := recordName(d.command.Schema(), true); d.topic == topic && !seen[name] {
			seen[name] = true
			records = append(records, d.command)
		}
	}
	return records
}

// RepliesOf returns every reply declared, each once: the records a reply
// topic carries, since a participant answers any saga that asks.
func RepliesOf(declared ...Declared) []Record {
	var records []Record
	seen := map[string]bool{}
	for _, i := range declared {
		for _, r := range i.declared().replies {
			if name := recordName(r.Schema(), true); !seen[name] {
				seen[name] = true
				records = append(records, r)
			}
		}
	}
	return records
}

// recordOf returns a zero record of type R: a new one if R is a pointer.
func recordOf[R Record]() Record {
	if t := reflect.TypeFor[R](); t.Kind() == reflect.Pointer {
		return reflect.New(t.Elem()).Interface().(Record)
	}
	var zero R
	return zero
}
