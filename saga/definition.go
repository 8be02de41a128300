// Package saga is the saga protocol, knowing no particular saga. Each command
// is an Interaction, declared once with its topic, key and replies. On the
// orchestrator's side, a saga type is a Definition, a list of steps, each
// with the command it sends, the replies it accepts and the command that
// undoes it; the Engine runs its instances: forward step by step while
// replies succeed, and on a failure back through the completed steps'
// compensations in reverse order. A Definition has versions: an instance
// runs to its end under the version it started under, so the engine is
// given every version that still has instances running. On a
// participant's side, a Participant
// hands each command to its typed handler and sends the reply back.
//
// The engine is generic over the saga's data D; *D must be an Avro record
// (a generated type), because the data is stored, encoded, inside each
// SagaInstance.
package saga

import (
	"errors"
	"fmt"
	"reflect"
	"strings"

	"github.com/hamba/avro/v2"
)

// Record is a value that has an Avro schema: the generated types (as
// pointers) are records. It is an alias, so a codec written against an
// identical alias elsewhere satisfies Codec.
type Record = interface{ Schema() avro.Schema }

// Call is a command a step sends: its interaction, and how to build it from
// the saga's data. The zero Call sends nothing.
type Call[D any] struct {
	declared declaration
	build    func(d *D, reason string) Record
}

// Invoke is a step's command of interaction i, built from the saga's data.
func Invoke[D any, C, R Record](i Interaction[C, R], build func(d *D) C) Call[D] {
	return Call[D]{declared: i.declared(), build: func(d *D, _ string) Record { return build(d) }}
}

// Compensate is a step's undo command of interaction i, built from the
// saga's data and its failure reason.
func Compensate[D any, C, R Record](i Interaction[C, R], build func(d *D, reason string) C) Call[D] {
	return Call[D]{declared: i.declared(), build: func(d *D, reason string) Record { return build(d, reason) }}
}

func (c Call[D]) sends() bool { return c.build != nil }

// Outcome is what a reply means for its step: Success, or a failure whose
// reason the saga records and hands to the compensations.
type Outcome string

// Success moves the saga to its next step. It is the empty failure reason, so
// Failure("") is Success too.
const Success Outcome = ""

// Failure makes the saga compensate the steps completed before this one.
func Failure(reason string) Outcome { return Outcome(reason) }

// Reply is one record type a participant may answer with, its outcome, and
// what it sets in the saga's data.
type Reply struct {
	name    string // the record's full name, e.g. kafkasaga.customer.CreditReserved
	outcome Outcome
	data    reflect.Type          // the data type set takes, a pointer; nil without set
	set     func(d any, r Record) // nil: the reply sets nothing
}

// Replies lists the replies a command accepts. Any other reply is an error.
type Replies []Reply

// On says that a reply of record type T has the given outcome.
func On[T any, P interface {
	*T
	Record
}](outcome Outcome) Reply {
	return Reply{name: recordName(P(new(T)).Schema(), true), outcome: outcome}
}

// OnReply says that a reply of record type T has the given outcome, and
// that set copies what the saga keeps of it into its data, before the saga
// moves on: the commands built after it see the data set.
func OnReply[D, T any, P interface {
	*T
	Record
}](outcome Outcome, set func(d *D, r P)) Reply {
	r := On[T, P](outcome)
	r.data = reflect.TypeFor[*D]()
	r.set = func(d any, rec Record) { set(d.(*D), rec.(P)) }
	return r
}

func (rs Replies) find(name string) (Reply, bool) {
	for _, r := range rs {
		if r.name == name {
			return r, true
		}
	}
	return Reply{}, false
}

// Step is one step of a saga. Invoke and Compensate build their commands as
// pure functions of the saga's data: the engine builds them again whenever
// it (re)sends a command.
//
// A step that times out MaxAttempts times fails the saga, and is compensated
// itself too, since whether it took effect is unknown. Steps after the last
// step that can fail (the pivot) are the exception: the saga is committed to
// completing once the pivot succeeded, so their commands are re-sent until
// they are answered, as compensations are.
type Step[D any] struct {
	Name string // unique within the saga, used in command ids, headers and logs

	Invoke  Call[D] // the zero Call: the step has nothing to do going forward
	Replies Replies // what each reply to Invoke's command means: the ones its interaction declares

	// Compensate undoes the step; the zero Call: nothing to undo. Its reason
	// is the saga's failure reason. Compensations cannot fail: they are
	// re-sent until one of CompensateReplies arrives, all of which must be
	// Success. The one exception is the compensation of a step that never
	// answered: after MaxAttempts the saga stops waiting for it, since it is
	// queued behind the step's own command. So Compensate must send to the
	// same topic, with the same key, as Invoke: NewEngine checks the topic,
	// sagatest's Harness.Play the key.
	Compensate        Call[D]
	CompensateReplies Replies
}

// Definition is one version of a saga type: its topics and its steps, in
// order.
type Definition[D any] struct {
	Type string // e.g. contracts.SagaTypeCreateOrder
	// Version numbers the definitions of one saga type, from 1. An instance
	// records the version it started under and runs to its end under it, so
	// a change to the steps while instances run is a new version, given to
	// the engine beside the ones that still have instances running.
	Version int
	// Description says in a sentence what the saga does, for its docs and
	// diagram (Outline); the engine does not read it.
	Description string
	ReplyTopic  string // where participants reply; the engine consumes it
	StateTopic  string // where the instances are kept; it names the subject of the data's schema
	Steps       []Step[D]
}

// Versions are the versions of one saga type an engine runs: all of one
// type, reply topic and state topic, each version once. New instances start
// under the highest; each stored instance runs under the version it records.
type Versions[D any] []Definition[D]

// validate reports every mistake in the versions at once.
func (vs Versions[D]) validate() error {
	if len(vs) == 0 {
		return errors.New("no definition")
	}
	var errs []error
	first, seen := vs[0], map[int]bool{}
	for _, def := range vs {
		if err := def.validate(); err != nil {
			errs = append(errs, fmt.Errorf("version %d: %w", def.Version, err))
		}
		if seen[def.Version] {
			errs = append(errs, fmt.Errorf("version %d is given twice", def.Version))
		}
		seen[def.Version] = true
		if def.Type != first.Type || def.ReplyTopic != first.ReplyTopic || def.StateTopic != first.StateTopic {
			errs = append(errs, fmt.Errorf("version %d is of type %q on %s and %s, version %d of %q on %s and %s: the versions of one engine share their type and topics",
				def.Version, def.Type, def.ReplyTopic, def.StateTopic, first.Version, first.Type, first.ReplyTopic, first.StateTopic))
		}
	}
	return errors.Join(errs...)
}

// latest returns the highest version.
func (vs Versions[D]) latest() Definition[D] {
	latest := vs[0]
	for _, def := range vs[1:] {
		if def.Version > latest.Version {
			latest = def
		}
	}
	return latest
}

// validate reports every mistake in the definition at once.
func (def Definition[D]) validate() error {
	var errs []error
	if def.Type == "" {
		errs = append(errs, errors.New("saga type is empty"))
	}
	if def.Version < 1 {
		errs = append(errs, fmt.Errorf("version is %d, want 1 or more", def.Version))
	}
	if def.ReplyTopic == "" {
		errs = append(errs, errors.New("reply topic is empty"))
	}
	if def.StateTopic == "" {
		errs = append(errs, errors.New("state topic is empty"))
	}
	if len(def.Steps) == 0 {
		errs = append(errs, errors.New("no steps"))
	}
	seen := map[string]bool{}
	for i, s := range def.Steps {
		at := fmt.Sprintf("step %d %q", i, s.Name)
		switch {
		case s.Name == "":
			errs = append(errs, fmt.Errorf("%s: name is empty", at))
		case strings.Contains(s.Name, ":"):
			errs = append(errs, fmt.Errorf("%s: name contains ':', which separates the parts of command ids", at))
		case seen[s.Name]:
			errs = append(errs, fmt.Errorf("%s: name is used twice", at))
		}
		seen[s.Name] = true
		errs = append(errs, validateReplies(at+" Replies", s.Invoke, s.Replies, false))
		errs = append(errs, validateReplies(at+" CompensateReplies", s.Compensate, s.CompensateReplies, true))
		if s.Invoke.sends() && s.Compensate.sends() {
			if in, out := s.Invoke.declared.topic, s.Compensate.declared.topic; in != out {
				errs = append(errs, fmt.Errorf("%s: invokes on %s but compensates on %s: the undo must queue behind the do, on one topic", at, in, out))
			}
		}
	}
	return errors.Join(errs...)
}

// validateReplies checks what a step makes of the replies to its command c:
// exactly those c's interaction declares, at least one a success.
func validateReplies[D any](at string, c Call[D], rs Replies, compensation bool) error {
	if !c.sends() {
		if len(rs) > 0 {
			return fmt.Errorf("%s: given without a command", at)
		}
		return nil
	}
	d := c.declared
	if err := d.check(); err != nil {
		return fmt.Errorf("%s: %w", at, err)
	}
	if len(rs) == 0 {
		return fmt.Errorf("%s: missing: the command could never be answered", at)
	}
	var errs []error
	declared := map[string]bool{}
	for _, r := range d.replies {
		declared[recordName(r.Schema(), true)] = true
	}
	for _, r := range rs {
		if !declared[r.name] {
			errs = append(errs, fmt.Errorf("%s: %s is not a reply interaction %s declares", at, r.name, d.name))
		}
	}
	for name := range declared {
		if _, ok := rs.find(name); !ok {
			errs = append(errs, fmt.Errorf("%s: %s, a reply interaction %s declares, is missing: it would be dead-lettered", at, name, d.name))
		}
	}
	seen := map[string]bool{}
	succeeds := false
	for _, r := range rs {
		if r.name == "" {
			errs = append(errs, fmt.Errorf("%s: a reply type has no record name", at))
		}
		if seen[r.name] {
			errs = append(errs, fmt.Errorf("%s: %s is listed twice", at, r.name))
		}
		seen[r.name] = true
		if want := reflect.TypeFor[*D](); r.data != nil && r.data != want {
			errs = append(errs, fmt.Errorf("%s: %s sets data of type %s, not the saga's %s", at, r.name, r.data, want))
		}
		if r.outcome == Success {
			succeeds = true
		} else if compensation {
			errs = append(errs, fmt.Errorf("%s: %s fails, but a compensation cannot fail", at, r.name))
		}
	}
	if !succeeds {
		errs = append(errs, fmt.Errorf("%s: no reply succeeds", at))
	}
	return errors.Join(errs...)
}

// committed reports whether step i comes after the pivot, the last step that
// can fail: such a step is retried until it is answered, never compensated.
func (def Definition[D]) committed(i int) bool {
	for _, s := range def.Steps[i:] {
		for _, r := range s.Replies {
			if r.outcome != Success {
				return false
			}
		}
	}
	return true
}

// recordName returns a record schema's full name (kafkasaga.customer.CreditReserved)
// or its short name (CreditReserved), or "" for a schema without a name.
func recordName(s avro.Schema, full bool) string {
	named, ok := s.(avro.NamedSchema)
	if !ok {
		return ""
	}
	if full {
		return named.FullName()
	}
	return named.Name()
}
