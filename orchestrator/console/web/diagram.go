package web

import (
	"fmt"
	"html"
	"slices"
	"strings"

	"github.com/kafkasaga/kafkasaga/saga"
)

// graph is a saga's Graph laid out in two columns: the one Mermaid draws
// in docs/sagas, so the console and the docs show one diagram.
type graph struct {
	nodes []node
	edges []edge
}

type node struct {
	saga.GraphNode
	col int // 0: start, the forward steps and COMPLETED; 1: the compensations and REJECTED
	row int
}

type edge = saga.GraphEdge

// outlineGraph lays out o's Graph: the forward steps down the left column,
// from start to COMPLETED; each compensation to the right of its step, so
// that undoing runs back up the right column to REJECTED, level with start.
func outlineGraph(o saga.Outline) graph {
	g := o.Graph()
	laid := graph{edges: g.Edges}
	for _, n := range g.Nodes {
		at := node{GraphNode: n}
		switch n.ID {
		case "start":
		case "completed":
			at.row = len(o.Steps) + 1
		case "rejected":
			at.col = 1
		default: // stepN, undoN
			at.row = n.Index + 1
			if n.Kind == "undo" {
				at.col = 1
			}
		}
		laid.nodes = append(laid.nodes, at)
	}
	return laid
}

// steps returns what ?step= may name, in the order of the nodes.
func (g graph) steps() []string {
	var steps []string
	for _, n := range g.nodes {
		if n.Step != "" {
			steps = append(steps, n.Step)
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
		pos[n.ID] = n
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
		if pos[e.From].col != pos[e.To].col {
			side[e.From] = append(side[e.From], k)
		} else {
			pairs[[2]string{e.From, e.To}] = append(pairs[[2]string{e.From, e.To}], k)
		}
	}
	for k, e := range g.edges {
		from, to := pos[e.From], pos[e.To]
		var x1, y1, x2, y2, lx, ly float64
		anchor := "start"
		if from.col == to.col {
			x1, x2 = centerX(from), centerX(to)
			if to.row > from.row {
				y1, y2 = top(from)+nodeH, top(to)
			} else {
				y1, y2 = top(from), top(to)+nodeH
			}
			pair := pairs[[2]string{e.From, e.To}]
			at := float64(slices.Index(pair, k)) - float64(len(pair)-1)/2
			x1 += at * 12
			x2 = x1
			lx, ly = x1+6, (y1+y2)/2+4+at*14
			if from.col == 1 { // labels of the right column go left of its edges, in the gap
				lx, anchor = x1-6, "end"
			}
		} else {
			out := side[e.From]
			at := slices.Index(out, k)
			x1 = left(from) + nodeW
			y1 = top(from) + float64(at+1)*nodeH/float64(len(out)+1)
			x2, y2 = left(to), top(to)+nodeH/2
			lx, ly = x1+6, y1-3
		}
		dash := ""
		if e.Timeout {
			dash = ` stroke-dasharray="5 4"`
		}
		fmt.Fprintf(&b, `<g class="edge" data-from="%s" data-to="%s" data-label="%s" data-timeout="%t">`, e.From, e.To, esc(e.Label), e.Timeout)
		fmt.Fprintf(&b, `<line x1="%.0f" y1="%.0f" x2="%.0f" y2="%.0f" stroke="#555" stroke-width="1.2"%s marker-end="url(#arrow)"/>`, x1, y1, x2, y2, dash)
		if e.Label != "" {
			fmt.Fprintf(&b, `<text x="%.0f" y="%.0f" text-anchor="%s" font-size="11" fill="#333" stroke="#fff" stroke-width="3" paint-order="stroke">%s</text>`, lx, ly, anchor, esc(e.Label))
		}
		b.WriteString("</g>\n")
	}

	for _, n := range g.nodes {
		fill, stroke, width, dash, rx := "#fff", "#667", 1.2, "", 4
		switch n.Kind {
		case "start", "ended":
			fill, rx = "#eef1f5", nodeH/2
		case "pivot":
			width = 3.5
		case "undo":
			fill, dash = "#fbf5ee", ` stroke-dasharray="5 3"`
		}
		isCurrent := current != "" && n.Step == current
		if isCurrent {
			fill, stroke, width = "#fff3b0", "#1a56db", 3.5
		}
		fmt.Fprintf(&b, `<g class="node" id="%s" data-step="%s" data-current="%t">`, n.ID, esc(n.Step), isCurrent)
		fmt.Fprintf(&b, `<rect x="%.0f" y="%.0f" width="%d" height="%d" rx="%d" fill="%s" stroke="%s" stroke-width="%.1f"%s/>`,
			left(n), top(n), nodeW, nodeH, rx, fill, stroke, width, dash)
		y := top(n) + nodeH/2 - float64(len(n.Lines)-1)*lineH/2 + 4
		for i, l := range n.Lines {
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
