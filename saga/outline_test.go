package saga_test

import (
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/kafkasaga/kafkasaga/saga"
)

// pivotLaterDef has a step before the pivot that cannot fail and has
// nothing to undo (pay), so a failure and a timeout skip its compensation.
func pivotLaterDef() saga.Definition[data] {
	def := testDef()
	pay := saga.Step[data]{
		Name:    "pay",
		Invoke:  saga.Invoke(AuthorizePaymentInteraction, func(d *data) *AuthorizePayment { return &AuthorizePayment{OrderID: d.OrderID} }),
		Replies: saga.Replies{saga.On[PaymentAuthorized](saga.Success)},
	}
	def.Steps = slices.Insert(def.Steps, 1, pay) // open, pay, reserve, approve
	return def
}

// diagram is a Mermaid flowchart as the tests read it back.
type diagram struct {
	nodes []string          // ids, in the order declared
	label map[string]string // id: label, quotes removed
	edges []string          // "from -->|label| to" or "from -.->|label| to", "from --> to" without a label
	class map[string]string // id: class
}

var (
	nodeLine  = regexp.MustCompile(`^    (\w+)(?:\(\[|\[)"([^"]*)"(?:\]\)|\])$`)
	edgeLine  = regexp.MustCompile(`^    (\w+) (-->|-\.->)(?:\|"([^"]*)"\|)? (\w+)$`)
	classLine = regexp.MustCompile(`^    class ([\w,]+) (\w+)$`)
	defLine   = regexp.MustCompile(`^    classDef \w+ [\w:;, -]+$`)
)

// parse reads what Outline.Mermaid writes, failing on any other line, so
// a label that breaks out of its quotes is caught.
func parse(t *testing.T, m string) diagram {
	t.Helper()
	lines := strings.Split(strings.TrimSuffix(m, "\n"), "\n")
	if lines[0] != "flowchart TD" {
		t.Fatalf("first line %q, want flowchart TD", lines[0])
	}
	d := diagram{label: map[string]string{}, class: map[string]string{}}
	for _, l := range lines[1:] {
		switch {
		case nodeLine.MatchString(l):
			g := nodeLine.FindStringSubmatch(l)
			if _, ok := d.label[g[1]]; ok {
				t.Errorf("node %s declared twice", g[1])
			}
			d.nodes, d.label[g[1]] = append(d.nodes, g[1]), g[2]
		case edgeLine.MatchString(l):
			g := edgeLine.FindStringSubmatch(l)
			for _, id := range []string{g[1], g[4]} {
				if _, ok := d.label[id]; !ok {
					t.Errorf("edge %q: node %s is not declared before", l, id)
				}
			}
			e := g[1] + " " + g[2] + " " + g[4]
			if g[3] != "" {
				e = g[1] + " " + g[2] + "|" + g[3] + "| " + g[4]
			}
			d.edges = append(d.edges, e)
		case classLine.MatchString(l):
			g := classLine.FindStringSubmatch(l)
			for _, id := range strings.Split(g[1], ",") {
				d.class[id] = g[2]
			}
		case defLine.MatchString(l):
		default:
			t.Errorf("line %q is no node, edge or class", l)
		}
	}
	return d
}

func TestTheDiagramShowsEveryReplyWhereItLeads(t *testing.T) {
	m := testDef().Mermaid()
	d := parse(t, m)
	want := []string{
		"start --> step0",
		"step0 --> step1", // open has no command: the saga moves on
		"step1 -->|CreditReserved| step2",
		"step1 -->|CreditLimitExceeded: fail NO_CREDIT| undo0", // reserve did nothing: open is undone
		"step1 -.->|no answer: fail TIMEOUT_RESERVE| undo1",    // reserve may have: it is undone too
		"step2 -->|OrderApproved| completed",
		"undo1 -->|CreditReleased| undo0",
		"undo1 -.->|no answer either: go on| undo0",
		"undo0 -->|OrderRejected| rejected",
	}
	if !slices.Equal(d.edges, want) {
		t.Errorf("edges:\n got %q\nwant %q\n%s", d.edges, want, m)
	}
	if got := d.nodes; !slices.Equal(got, []string{"start", "step0", "step1", "step2", "completed", "undo1", "undo0", "rejected"}) {
		t.Errorf("nodes %q: want the steps in order, the compensations in reverse", got)
	}
	for id, want := range map[string]string{
		"step0": "open<br/>no command",
		"step1": "reserve<br/>ReserveCredit on customer<br/>pivot: the last step that can fail",
		"step2": "approve<br/>ApproveOrder on order<br/>re-sent until answered",
		"undo1": "undo reserve<br/>ReleaseCredit on customer",
		"undo0": "undo open<br/>RejectOrder on order",
	} {
		if d.label[id] != want {
			t.Errorf("%s is labelled %q, want %q", id, d.label[id], want)
		}
	}
	if d.class["step1"] != "pivot" || d.class["undo0"] != "undo" || d.class["undo1"] != "undo" || d.class["rejected"] != "ended" {
		t.Errorf("classes %v: want the pivot, the compensations and the ends marked", d.class)
	}
	if again := testDef().Mermaid(); again != m {
		t.Errorf("a second rendering differs:\n%s\n%s", m, again)
	}
}

func TestAFailureSkipsTheStepsWithNothingToUndo(t *testing.T) {
	def := pivotLaterDef()
	d := parse(t, def.Mermaid())
	for _, e := range []string{
		"step1 -->|PaymentAuthorized| step2",
		"step1 -.->|no answer: fail TIMEOUT_PAY| undo0", // pay has nothing to undo
		"step2 -->|CreditLimitExceeded: fail NO_CREDIT| undo0",
		"step2 -.->|no answer: fail TIMEOUT_RESERVE| undo2",
		"undo2 -->|CreditReleased| undo0",
		"undo2 -.->|no answer either: go on| undo0",
		"step3 -->|OrderApproved| completed",
	} {
		if !slices.Contains(d.edges, e) {
			t.Errorf("no edge %s in %q", e, d.edges)
		}
	}
	if _, ok := d.label["undo1"]; ok {
		t.Error("pay, with nothing to undo, has a compensation node")
	}
	// Only the pivot's own compensation goes on when unanswered; the others
	// are re-sent until answered.
	for _, e := range d.edges {
		if strings.HasPrefix(e, "undo0 -.->") {
			t.Errorf("edge %s: open never timed out, so its compensation is re-sent until answered", e)
		}
	}
	o := def.Outline()
	if o.Pivot != 2 {
		t.Errorf("pivot %d, want 2 (reserve)", o.Pivot)
	}
	var timeouts []string
	for _, s := range o.Steps {
		timeouts = append(timeouts, s.Timeout)
	}
	if want := []string{"", "TIMEOUT_PAY", "TIMEOUT_RESERVE", ""}; !slices.Equal(timeouts, want) {
		t.Errorf("timeouts %q, want %q", timeouts, want)
	}
	if got := o.Steps[2].Command.Replies; !slices.Equal(got, []saga.ReplyOutline{{Name: "CreditReserved"}, {Name: "CreditLimitExceeded", Failure: "NO_CREDIT"}}) {
		t.Errorf("reserve's replies %+v", got)
	}
}

func TestASagaThatCannotFailHasNoCompensationPath(t *testing.T) {
	def := testDef()
	def.Steps[1].Replies = saga.Replies{saga.On[CreditReserved](saga.Success), saga.On[CreditLimitExceeded](saga.Success)}
	d := parse(t, def.Mermaid())
	if def.Outline().Pivot != -1 {
		t.Errorf("pivot %d, want -1", def.Outline().Pivot)
	}
	for _, id := range d.nodes {
		if strings.HasPrefix(id, "undo") || id == "rejected" {
			t.Errorf("node %s: nothing can fail, so nothing is undone", id)
		}
	}
	for _, e := range d.edges {
		if strings.Contains(e, "-.->") {
			t.Errorf("edge %s: every step is re-sent until answered", e)
		}
	}
}

func TestLabelsAreEscaped(t *testing.T) {
	def := testDef()
	def.Type = `Odd"Type`
	def.Steps[1].Name = `re|serve <b>"x"</b> [1] #2`
	d := parse(t, def.Mermaid()) // fails on a line a label broke out of
	if got, want := d.label["step1"], "re#124;serve #lt;b#gt;#quot;x#quot;#lt;/b#gt; #91;1#93; #35;2<br/>"; !strings.HasPrefix(got, want) {
		t.Errorf("label %q, want it to start %q", got, want)
	}
	if got := d.label["start"]; got != "start: Odd#quot;Type v1" {
		t.Errorf("start label %q", got)
	}
}
