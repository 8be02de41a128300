package web

import (
	"fmt"
	"html"
	"slices"
	"strings"

	"github.com/kafkasaga/kafkasaga/saga"
)

// graph is a saga's outline as nodes and edges: the same ones, with the
// same ids and labels, as its Mermaid flowchart (saga.Outline.Mermaid), so
// the console and docs/sagas show one drawing.
type graph struct {
	nodes []node
	edges []edge
}

type node struct {
	id    string   // start, stepN, undoN, completed, rejected
	step  string   // what ?step= names it: a step name, name:compensate, COMPLETED or REJECTED; "" for start
	lines []string // its label, first line bold
	kind  string   // start, step, pivot, undo, ended
	col   int      // 0: the forward steps, 1: the compensations
	row   int
}

type edge struct {
	from, to string
	label    string
	timeout  bool // dotted: a command left unanswered
}

// outlineGraph lays out o: the forward steps down the left column, from
// start to COMPLETED; each compensation to the right of its step, so that
// undoing runs back up the right column to REJECTED, level with start.
func outlineGraph(o saga.Outline) graph {
	var g graph
	g.nodes = append(g.nodes, node{id: "start", lines: []string{fmt.Sprintf("start: %s v%d", o.Type, o.Version)}, kind: "start"})
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
		g.nodes = append(g.nodes, node{id: stepID(i), step: s.Name, lines: lines, kind: kind, row: i + 1})
	}
	g.nodes = append(g.nodes, node{id: "completed", step: saga.StateCompleted, lines: []string{"COMPLETED"}, kind: "ended", row: len(o.Steps) + 1})
	undone := undone(o)
	for _, i := range undone {
		c := o.Steps[i].Compensation
		g.nodes = append(g.nodes, node{id: undoID(i), step: o.Steps[i].Name + ":compensate",
			lines: []string{"undo " + o.Steps[i].Name, c.Name + " on " + c.Topic}, kind: "undo", col: 1, row: i + 1})
	}
	if o.Pivot >= 0 {
		g.nodes = append(g.nodes, node{id: "rejected", step: saga.StateRejected, lines: []string{"REJECTED", "with the failure reason"}, kind: "ended", col: 1})
	}

	g.edges = append(g.edges, edge{from: "start", to: stepID(0)})
	for i, s := range o.Steps {
		next := "completed"
		if i+1 < len(o.Steps) {
			next = stepID(i + 1)
		}
		if s.Command == nil {
			g.edges = append(g.edges, edge{from: stepID(i), to: next})
			continue
		}
		for _, r := range s.Command.Replies {
			if r.Failure == "" {
				g.edges = append(g.edges, edge{from: stepID(i), to: next, label: r.Name})
			} else {
				g.edges = append(g.edges, edge{from: stepID(i), to: undoNode(o.UndoFrom(i, false)), label: r.Name + ": fail " + r.Failure})
			}
		}
		if s.Timeout != "" {
			g.edges = append(g.edges, edge{from: stepID(i), to: undoNode(o.UndoFrom(i, true)), label: "no answer: fail " + s.Timeout, timeout: true})
		}
	}
	for _, i := range undone {
		s, next := o.Steps[i], undoNode(o.UndoFrom(i, false))
		for _, r := range s.Compensation.Replies {
			g.edges = append(g.edges, edge{from: undoID(i), to: next, label: r.Name})
		}
		if s.Timeout != "" {
			g.edges = append(g.edges, edge{from: undoID(i), to: next, label: "no answer either: go on", timeout: true})
		}
	}
	return g
}

// undone returns the steps whose compensation may run, last first: those
// up to the pivot that have one (as the Mermaid draws them).
func undone(o saga.Outline) []int {
	var steps []int
	for i := o.Pivot; i >= 0; i-- {
		if o.Steps[i].Compensation != nil {
			steps = append(steps, i)
		}
	}
	return steps
}

func undoNode(i int) string {
	if i < 0 {
		return "rejected"
	}
	return undoID(i)
}

func stepID(i int) string { return fmt.Sprintf("step%d", i) }
func undoID(i int) string { return fmt.Sprintf("undo%d", i) }

// steps returns what ?step= may name, in the order of the nodes.
func (g graph) steps() []string {
	var steps []string
	for _, n := range g.nodes {
		if n.step != "" {
			steps = append(steps, n.step)
		}
	}
	return steps
}

// Sizes of the drawing, in pixels.
const (
	nodeW  = 250
	nodeH  = 58
	rowH   = 104
	gapW   = 330 // between the columns, where the failure edges and their labels go
	margin = 16
	lineH  = 15
)

// svg draws g, the node whose step is current (if any) highlighted. Every
// text is escaped: names come from the definitions, but nothing here
// should trust that.
func (g graph) svg(title, current string) string {
	rows := 0
	for _, n := range g.nodes {
		rows = max(rows, n.row+1)
	}
	width, height := 2*margin+2*nodeW+gapW, 2*margin+rows*rowH-(rowH-nodeH)
	pos := map[string]node{}
	for _, n := range g.nodes {
		pos[n.id] = n
	}
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 %d %d" width="%d" height="%d" font-family="system-ui, sans-serif" font-size="12">`+"\n", width, height, width, height)
	fmt.Fprintf(&b, "<title>%s</title>\n", esc(title))
	b.WriteString(`<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#555"/></marker></defs>` + "\n")

	// Edges first, under the nodes. The side edges of a node (to the other
	// column) leave it spread along its right side, each labelled where it
	// starts; the edges within a column are vertical, labelled beside.
	side := map[string][]int{}
	pairs := map[[2]string][]int{} // edges within a column, by ends: drawn side by side
	for k, e := range g.edges {
		if pos[e.from].col != pos[e.to].col {
			side[e.from] = append(side[e.from], k)
		} else {
			pairs[[2]string{e.from, e.to}] = append(pairs[[2]string{e.from, e.to}], k)
		}
	}
	for k, e := range g.edges {
		from, to := pos[e.from], pos[e.to]
		var x1, y1, x2, y2, lx, ly float64
		anchor := "start"
		if from.col == to.col {
			x1, x2 = centerX(from), centerX(to)
			if to.row > from.row {
				y1, y2 = top(from)+nodeH, top(to)
			} else {
				y1, y2 = top(from), top(to)+nodeH
			}
			pair := pairs[[2]string{e.from, e.to}]
			at := float64(slices.Index(pair, k)) - float64(len(pair)-1)/2
			x1 += at * 12
			x2 = x1
			lx, ly = x1+6, (y1+y2)/2+4+at*14
			if from.col == 1 { // labels of the right column go left of its edges, in the gap
				lx, anchor = x1-6, "end"
			}
		} else {
			out := side[e.from]
			at := slices.Index(out, k)
			x1 = left(from) + nodeW
			y1 = top(from) + float64(at+1)*nodeH/float64(len(out)+1)
			x2, y2 = left(to), top(to)+nodeH/2
			lx, ly = x1+6, y1-3
		}
		dash := ""
		if e.timeout {
			dash = ` stroke-dasharray="5 4"`
		}
		fmt.Fprintf(&b, `<g class="edge" data-from="%s" data-to="%s" data-label="%s" data-timeout="%t">`, e.from, e.to, esc(e.label), e.timeout)
		fmt.Fprintf(&b, `<line x1="%.0f" y1="%.0f" x2="%.0f" y2="%.0f" stroke="#555" stroke-width="1.2"%s marker-end="url(#arrow)"/>`, x1, y1, x2, y2, dash)
		if e.label != "" {
			fmt.Fprintf(&b, `<text x="%.0f" y="%.0f" text-anchor="%s" font-size="11" fill="#333" stroke="#fff" stroke-width="3" paint-order="stroke">%s</text>`, lx, ly, anchor, esc(e.label))
		}
		b.WriteString("</g>\n")
	}

	for _, n := range g.nodes {
		fill, stroke, width, dash, rx := "#fff", "#667", 1.2, "", 4
		switch n.kind {
		case "start", "ended":
			fill, rx = "#eef1f5", nodeH/2
		case "pivot":
			width = 3.5
		case "undo":
			fill, dash = "#fbf5ee", ` stroke-dasharray="5 3"`
		}
		isCurrent := current != "" && n.step == current
		if isCurrent {
			fill, stroke, width = "#fff3b0", "#1a56db", 3.5
		}
		fmt.Fprintf(&b, `<g class="node" id="%s" data-step="%s" data-current="%t">`, n.id, esc(n.step), isCurrent)
		fmt.Fprintf(&b, `<rect x="%.0f" y="%.0f" width="%d" height="%d" rx="%d" fill="%s" stroke="%s" stroke-width="%.1f"%s/>`,
			left(n), top(n), nodeW, nodeH, rx, fill, stroke, width, dash)
		y := top(n) + nodeH/2 - float64(len(n.lines)-1)*lineH/2 + 4
		for i, l := range n.lines {
			weight, size := "normal", 11
			if i == 0 {
				weight, size = "bold", 13
			}
			fmt.Fprintf(&b, `<text x="%.0f" y="%.0f" text-anchor="middle" font-weight="%s" font-size="%d" fill="#111">%s</text>`,
				centerX(n), y+float64(i)*lineH, weight, size, esc(l))
		}
		b.WriteString("</g>\n")
	}
	b.WriteString("</svg>\n")
	return b.String()
}

func left(n node) float64    { return float64(margin + n.col*(nodeW+gapW)) }
func top(n node) float64     { return float64(margin + n.row*rowH) }
func centerX(n node) float64 { return left(n) + nodeW/2 }

func esc(s string) string { return html.EscapeString(s) }
