// Package saga is a small orchestration engine: a saga type is a Definition,
// a list of steps, each with the command it sends, the replies it accepts and
// the command that undoes it. The Engine runs instances of a definition:
// forward step by step while replies succeed, and on a failure back through
// the completed steps' compensations in reverse order.
//
// The engine is generic over the saga's data D; *D must be an Avro record
// (a generated contracts type), because the data is stored, encoded, inside
// each SagaInstance.
package saga

import (
	"errors"
	"fmt"
	"strings"

	"github.com/hamba/avro/v2"
)

// Record is a value that has an Avro schema: the generated contracts types
// (as pointers) are records. It is an alias, so a codec written against an
// identical alias elsewhere satisfies Codec.
type Record = interface{ Schema() avro.Schema }

// Command is a message the saga sends to a participant.
type Command struct {
	Topic string // the participant's command topic
	Key   string // the aggregate the participant serializes on
	Body  Record
}

// Outcome is what a reply means for its step: Success, or a failure whose
// reason the saga records and hands to the compensations.
type Outcome string

// Success moves the saga to its next step. It is the empty failure reason, so
// Failure("") is Success too.
const Success Outcome = ""

// Failure makes the saga compensate the steps completed before this one.
func Failure(reason string) Outcome { return Outcome(reason) }

// Reply is one record type a participant may answer with, and its outcome.
type Reply struct {
	name    string // the record's full name, e.g. kafkasaga.customer.CreditReserved
	outcome Outcome
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

func (rs Replies) find(name string) (Outcome, bool) {
	for _, r := range rs {
		if r.name == name {
			return r.outcome, true
		}
	}
	return "", false
}

// Step is one step of a saga. Invoke and Compensate are pure functions of the
// saga's data: the engine calls them again whenever it (re)sends a command.
//
// A step that times out MaxAttempts times fails the saga, and is compensated
// itself too, since whether it took effect is unknown. Steps after the last
// step that can fail (the pivot) are the exception: the saga is committed to
// completing once the pivot succeeded, so their commands are re-sent until
// they are answered, as compensations are.
type Step[D any] struct {
	Name string // unique within the saga, used in command ids, headers and logs

	Invoke  func(d *D) Command // nil: the step has nothing to do going forward
	Replies Replies            // what each reply to Invoke's command means

	// Compensate undoes the step; nil: nothing to undo. reason is the
	// saga's failure reason. Compensations cannot fail: they are re-sent until
	// one of CompensateReplies arrives, all of which must be Success. The
	// one exception is the compensation of a step that never answered: after
	// MaxAttempts the saga stops waiting for it, since it is queued behind
	// the step's own command. So Compensate must send to the same topic, with
	// the same key, as Invoke.
	Compensate        func(d *D, reason string) Command
	CompensateReplies Replies
}

// Definition is a saga type: its topics and its steps, in order.
type Definition[D any] struct {
	Type       string // e.g. contracts.SagaTypeCreateOrder
	ReplyTopic string // where participants reply; the engine consumes it
	StateTopic string // where the instances are kept; it names the subject of the data's schema
	Steps      []Step[D]
}

// validate reports every mistake in the definition at once.
func (def Definition[D]) validate() error {
	var errs []error
	if def.Type == "" {
		errs = append(errs, errors.New("saga type is empty"))
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
		errs = append(errs, validateReplies(at+" Replies", s.Invoke != nil, s.Replies, false))
		errs = append(errs, validateReplies(at+" CompensateReplies", s.Compensate != nil, s.CompensateReplies, true))
		if s.Invoke != nil && s.Compensate != nil {
			var d D // commands are pure functions of the data: zero data shows their topics
			if in, out := s.Invoke(&d).Topic, s.Compensate(&d, "").Topic; in != out {
				errs = append(errs, fmt.Errorf("%s: invokes on %s but compensates on %s: the undo must queue behind the do, on one topic", at, in, out))
			}
		}
	}
	return errors.Join(errs...)
}

func validateReplies(at string, hasCommand bool, rs Replies, compensation bool) error {
	if !hasCommand {
		if len(rs) > 0 {
			return fmt.Errorf("%s: given without a command", at)
		}
		return nil
	}
	if len(rs) == 0 {
		return fmt.Errorf("%s: missing: the command could never be answered", at)
	}
	var errs []error
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
