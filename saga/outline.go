package saga

import (
	"fmt"
	"strings"
)

// Outline is the shape of one version of a saga type, whatever its data:
// its steps in order, the command each sends and where each reply leads.
// Docs and the console draw it (Mermaid); it holds no functions, so it is
// plain data to render.
type Outline struct {
	Type        string
	Version     int
	Description string
	ReplyTopic  string
	StateTopic  string
	Steps       []StepOutline
	// Pivot is the index of the last step that can fail, -1 if none can.
	// The steps after it are re-sent until answered, never compensated.
	Pivot int
}

// StepOutline is one step of an Outline.
type StepOutline struct {
	Name         string
	Command      *CommandOutline // nil: nothing to do going forward
	Compensation *CommandOutline // nil: nothing to undo
	// Timeout is the failure reason when the command goes unanswered
	// MaxAttempts times; "" when it is re-sent until answered (a step after
	// the pivot) or there is no command.
	Timeout string
}

// CommandOutline is a command a step sends and the replies it accepts.
type CommandOutline struct {
	Name    string // the command's record name, e.g. ReserveCredit
	Topic   string
	Replies []ReplyOutline // in the order the step lists them
}

// ReplyOutline is one reply a command accepts and what it means.
type ReplyOutline struct {
	Name    string // the reply's record name, e.g. CreditReserved
	Failure string // the failure reason; "" for a success
}

// Outline returns the definition's shape.
func (def Definition[D]) Outline() Outline {
	o := Outline{
		Type: def.Type, Version: def.Version, Description: def.Description,
		ReplyTopic: def.ReplyTopic, StateTopic: def.StateTopic, Pivot: -1,
	}
	for i, s := range def.Steps {
		so := StepOutline{Name: s.Name, Command: outlineCall(s.Invoke, s.Replies), Compensation: outlineCall(s.Compensate, s.CompensateReplies)}
		if !def.committed(i) {
			o.Pivot = i
			if so.Command != nil {
				so.Timeout = timeoutReason(s.Name)
			}
		}
		o.Steps = append(o.Steps, so)
	}
	return o
}

func outlineCall[D any](c Call[D], rs Replies) *CommandOutline {
	if !c.sends() {
		return nil
	}
	co := &CommandOutline{Name: c.declared.name, Topic: c.declared.topic}
	for _, r := range rs {
		co.Replies = append(co.Replies, ReplyOutline{Name: r.name[strings.LastIndex(r.name, ".")+1:], Failure: string(r.outcome)})
	}
	return co
}

// UndoFrom returns the index of the first compensation run when the saga
// fails at step i, which is itself compensated when included (a step that
// never answered: its effect is unknown): the highest step from i down
// (from i-1 down when not included) that has a compensation, or -1 when
// none has and the saga is at once REJECTED.
func (o Outline) UndoFrom(i int, included bool) int {
	if !included {
		i--
	}
	for ; i >= 0; i-- {
		if o.Steps[i].Compensation != nil {
			return i
		}
	}
	return -1
}

// Mermaid returns the definition drawn as a Mermaid flowchart: see
// Outline.Mermaid.
func (def Definition[D]) Mermaid() string { return def.Outline().Mermaid() }

// Mermaid returns the saga drawn as a Mermaid flowchart, the same text for
// the same outline. Forward steps (stepN, N the step's index) are boxes
// labelled with their name and command, the pivot drawn thick; each reply
// is an edge labelled with its record name: a success to the next step or
// COMPLETED, a failure, with its reason, to the first compensation it
// runs (undoN, of step N) or REJECTED. Dotted edges are timeouts: a step
// before or at the pivot that never answers fails and is undone itself
// too; when its compensation does not answer either, the saga goes on
// without it. The compensations run in reverse order, from undoN down to
// REJECTED.
func (o Outline) Mermaid() string {
	var b strings.Builder
	line := func(format string, args ...any) { fmt.Fprintf(&b, "    "+format+"\n", args...) }
	b.WriteString("flowchart TD\n")
	line("start([%s])", label(fmt.Sprintf("start: %s v%d", o.Type, o.Version)))
	for i, s := range o.Steps {
		parts := []string{s.Name}
		if s.Command == nil {
			parts = append(parts, "no command")
		} else {
			parts = append(parts, s.Command.Name+" on "+s.Command.Topic)
		}
		switch {
		case i == o.Pivot:
			parts = append(parts, "pivot: the last step that can fail")
		case i > o.Pivot && s.Command != nil:
			parts = append(parts, "re-sent until answered")
		}
		line("%s[%s]", stepID(i), label(parts...))
	}
	line("completed([%s])", label("COMPLETED"))
	undone := o.undone()
	for _, i := range undone {
		c := o.Steps[i].Compensation
		line("%s[%s]", undoID(i), label("undo "+o.Steps[i].Name, c.Name+" on "+c.Topic))
	}
	if o.Pivot >= 0 {
		line("rejected([%s])", label("REJECTED", "with the failure reason"))
	}

	line("start --> %s", stepID(0))
	for i, s := range o.Steps {
		next := "completed"
		if i+1 < len(o.Steps) {
			next = stepID(i + 1)
		}
		if s.Command == nil {
			line("%s --> %s", stepID(i), next)
			continue
		}
		for _, r := range s.Command.Replies {
			if r.Failure == "" {
				line("%s -->|%s| %s", stepID(i), label(r.Name), next)
			} else {
				line("%s -->|%s| %s", stepID(i), label(r.Name+": fail "+r.Failure), o.undoNode(o.UndoFrom(i, false)))
			}
		}
		if s.Timeout != "" {
			line("%s -.->|%s| %s", stepID(i), label("no answer: fail "+s.Timeout), o.undoNode(o.UndoFrom(i, true)))
		}
	}
	for _, i := range undone {
		s, next := o.Steps[i], o.undoNode(o.UndoFrom(i, false))
		for _, r := range s.Compensation.Replies {
			line("%s -->|%s| %s", undoID(i), label(r.Name), next)
		}
		if s.Timeout != "" {
			line("%s -.->|%s| %s", undoID(i), label("no answer either: go on"), next)
		}
	}

	line("classDef pivot stroke-width:4px")
	line("classDef undo stroke-dasharray:4 3")
	line("classDef ended font-weight:bold")
	if o.Pivot >= 0 {
		line("class %s pivot", stepID(o.Pivot))
	}
	if len(undone) > 0 {
		ids := make([]string, len(undone))
		for k, i := range undone {
			ids[k] = undoID(i)
		}
		line("class %s undo", strings.Join(ids, ","))
	}
	if o.Pivot >= 0 {
		line("class completed,rejected ended")
	} else {
		line("class completed ended")
	}
	return b.String()
}

// undone returns the steps whose compensation may run, last step first:
// those up to the pivot that have one. A step after the pivot is never
// compensated.
func (o Outline) undone() []int {
	var steps []int
	for i := o.Pivot; i >= 0; i-- {
		if o.Steps[i].Compensation != nil {
			steps = append(steps, i)
		}
	}
	return steps
}

func (o Outline) undoNode(i int) string {
	if i < 0 {
		return "rejected"
	}
	return undoID(i)
}

func stepID(i int) string { return fmt.Sprintf("step%d", i) }
func undoID(i int) string { return fmt.Sprintf("undo%d", i) }

// label quotes the lines of a Mermaid label, escaping what Mermaid would
// read as syntax (quotes, brackets, pipes, markup) as its entity codes.
func label(lines ...string) string {
	escaped := make([]string, len(lines))
	for i, l := range lines {
		escaped[i] = labelEscaper.Replace(l)
	}
	return `"` + strings.Join(escaped, "<br/>") + `"`
}

var labelEscaper = strings.NewReplacer(
	"#", "#35;", `"`, "#quot;", "<", "#lt;", ">", "#gt;", "|", "#124;",
	"`", "#96;", "[", "#91;", "]", "#93;", "{", "#123;", "}", "#125;", "\n", " ",
)
