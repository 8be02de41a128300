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

// Graph is an outline as the nodes and edges of its drawing: what Mermaid
// writes and the console draws, so that both show one diagram.
type Graph struct {
	Nodes []GraphNode // start, the steps, completed, the compensations (last step first), rejected
	Edges []GraphEdge
}

// GraphNode is a node of a Graph.
type GraphNode struct {
	ID    string   // start, stepN or undoN (N the step's index), completed, rejected
	Step  string   // what it stands for: a step's name, name:compensate, COMPLETED or REJECTED; "" for start
	Index int      // N of stepN and undoN
	Kind  string   // start, step, pivot, undo or ended
	Lines []string // its label, the first line its name
}

// GraphEdge is an edge of a Graph: a reply, or a command left unanswered
// (Timeout, drawn dotted).
type GraphEdge struct {
	From, To string
	Label    string
	Timeout  bool
}

// Graph returns the saga's nodes and edges. Forward steps are labelled
// with their name and command, the pivot marked; each reply is an edge
// labelled with its record name: a success to the next step or COMPLETED,
// a failure, with its reason, to the first compensation it runs or
// REJECTED. A timeout of a step before or at the pivot fails it and undoes
// it too; when its compensation does not answer either, the saga goes on
// without it. The compensations run in reverse order, down to REJECTED.
func (o Outline) Graph() Graph {
	var g Graph
	g.Nodes = append(g.Nodes, GraphNode{ID: "start", Kind: "start", Lines: []string{fmt.Sprintf("start: %s v%d", o.Type, o.Version)}})
	for i, s := range o.Steps {
		lines := []string{s.Name}
		if s.Command == nil {
			lines = append(lines, "no command")
		} else {
			lines = append(lines, s.Command.Name+" on "+s.Command.Topic)
		}
		kind := "step"
		switch {
		case i == o.Pivot:
			kind = "pivot"
			lines = append(lines, "pivot: the last step that can fail")
		case i > o.Pivot && s.Command != nil:
			lines = append(lines, "re-sent until answered")
		}
		g.Nodes = append(g.Nodes, GraphNode{ID: stepID(i), Step: s.Name, Index: i, Kind: kind, Lines: lines})
	}
	g.Nodes = append(g.Nodes, GraphNode{ID: "completed", Step: StateCompleted, Kind: "ended", Lines: []string{"COMPLETED"}})
	undone := o.undone()
	for _, i := range undone {
		c := o.Steps[i].Compensation
		g.Nodes = append(g.Nodes, GraphNode{ID: undoID(i), Step: o.Steps[i].Name + ":compensate", Index: i, Kind: "undo",
			Lines: []string{"undo " + o.Steps[i].Name, c.Name + " on " + c.Topic}})
	}
	if o.Pivot >= 0 {
		g.Nodes = append(g.Nodes, GraphNode{ID: "rejected", Step: StateRejected, Kind: "ended", Lines: []string{"REJECTED", "with the failure reason"}})
	}

	edge := func(from, to, label string, timeout bool) {
		g.Edges = append(g.Edges, GraphEdge{From: from, To: to, Label: label, Timeout: timeout})
	}
	edge("start", stepID(0), "", false)
	for i, s := range o.Steps {
		next := "completed"
		if i+1 < len(o.Steps) {
			next = stepID(i + 1)
		}
		if s.Command == nil {
			edge(stepID(i), next, "", false)
			continue
		}
		for _, r := range s.Command.Replies {
			if r.Failure == "" {
				edge(stepID(i), next, r.Name, false)
			} else {
				edge(stepID(i), o.undoNode(o.UndoFrom(i, false)), r.Name+": fail "+r.Failure, false)
			}
		}
		if s.Timeout != "" {
			edge(stepID(i), o.undoNode(o.UndoFrom(i, true)), "no answer: fail "+s.Timeout, true)
		}
	}
	for _, i := range undone {
		s, next := o.Steps[i], o.undoNode(o.UndoFrom(i, false))
		for _, r := range s.Compensation.Replies {
			edge(undoID(i), next, r.Name, false)
		}
		if s.Timeout != "" {
			edge(undoID(i), next, "no answer either: go on", true)
		}
	}
	return g
}

// Mermaid returns the saga's Graph as a Mermaid flowchart, the same text
// for the same outline: steps and compensations are boxes, start and the
// ends rounded, the pivot thick, the compensations dashed, timeouts dotted.
func (o Outline) Mermaid() string {
	var b strings.Builder
	line := func(format string, args ...any) { fmt.Fprintf(&b, "    "+format+"\n", args...) }
	b.WriteString("flowchart TD\n")
	g := o.Graph()
	classes := map[string][]string{}
	for _, n := range g.Nodes {
		if n.Kind == "start" || n.Kind == "ended" {
			line("%s([%s])", n.ID, label(n.Lines...))
		} else {
			line("%s[%s]", n.ID, label(n.Lines...))
		}
		classes[n.Kind] = append(classes[n.Kind], n.ID)
	}
	for _, e := range g.Edges {
		arrow := "-->"
		if e.Timeout {
			arrow = "-.->"
		}
		if e.Label == "" {
			line("%s %s %s", e.From, arrow, e.To)
		} else {
			line("%s %s|%s| %s", e.From, arrow, label(e.Label), e.To)
		}
	}

	line("classDef pivot stroke-width:4px")
	line("classDef undo stroke-dasharray:4 3")
	line("classDef ended font-weight:bold")
	for _, kind := range []string{"pivot", "undo", "ended"} {
		if ids := classes[kind]; len(ids) > 0 {
			line("class %s %s", strings.Join(ids, ","), kind)
		}
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
