// Package sagadocs writes the pages of docs/sagas from the saga types the
// orchestrator runs (service.Outlines): one page a saga type, <type>.md,
// with its diagram (saga.Outline.Mermaid) and its steps, and an index,
// README.md. `make docs` writes them (cmd/diagrams); a test fails when
// the committed pages differ from the definitions.
package sagadocs

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/kafkasaga/kafkasaga/orchestrator/service"
	"github.com/kafkasaga/kafkasaga/saga"
)

// Dir is where the pages are, relative to the repository's root.
const Dir = "docs/sagas"

// Index is the name of the page that lists the others.
const Index = "README.md"

// Pages returns every page by file name: one per saga type of outlines,
// <type>.md, and the Index.
func Pages(outlines []service.Outline) map[string]string {
	pages := map[string]string{Index: index(outlines)}
	for _, o := range outlines {
		pages[FileName(o.Type)] = Page(o)
	}
	return pages
}

// FileName is the name of a saga type's page.
func FileName(sagaType string) string { return sagaType + ".md" }

const generated = "<!-- Written by `make docs` from the saga definitions the orchestrator runs: do not edit. -->\n"

func index(outlines []service.Outline) string {
	var b strings.Builder
	b.WriteString("# Sagas\n\n" + generated + "\nThe saga types the orchestrator runs, each drawn from its definition:\n\n")
	for _, o := range outlines {
		fmt.Fprintf(&b, "- [%s](%s), version %d. %s\n", o.Type, FileName(o.Type), o.Version, o.Description)
	}
	return b.String()
}

// Page returns the page of one saga type: its title, what it does, its
// version and topics, its diagram and a table of its steps.
func Page(o service.Outline) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# The %s saga\n\n%s\n%s\n\n", o.Type, generated, o.Description)
	fmt.Fprintf(&b, "Version %d: new sagas start under it. ", o.Version)
	switch len(o.Previous) {
	case 0:
		b.WriteString("No earlier version has sagas running.")
	default:
		versions := make([]string, len(o.Previous))
		for i, v := range o.Previous {
			versions[i] = strconv.Itoa(v)
		}
		fmt.Fprintf(&b, "Earlier versions still run, each saga to its end under its own: %s.", strings.Join(versions, ", "))
	}
	fmt.Fprintf(&b, " A saga starts on %s from %s; participants reply on %s; running sagas are kept in %s, ended ones archived to %s.\n\n",
		code(o.StartEvent), code(o.StartTopic), code(o.ReplyTopic), code(o.StateTopic), code(o.EndedTopic))
	b.WriteString("```mermaid\n" + o.Mermaid() + "```\n\n")
	b.WriteString("Solid edges are replies, dotted ones a command left unanswered (`STEP_MAX_ATTEMPTS` sends): " +
		"its step fails and is undone too, since its effect is unknown. ")
	if o.Pivot >= 0 {
		b.WriteString("The thick step is the pivot, the last step that can fail: the steps after it are re-sent until " +
			"answered. Compensations run from the failed step back to the first, each re-sent until answered " +
			"but that of a step itself left unanswered (it timed out, or an operator aborted the saga while it waited): " +
			"after `STEP_MAX_ATTEMPTS` sends the saga goes on without it (dotted). " +
			"Then the saga is `REJECTED` with the failure reason.\n\n")
	} else {
		b.WriteString("No step can fail: every command is re-sent until answered.\n\n")
	}
	b.WriteString("| step | command | replies: outcome | compensation |\n| --- | --- | --- | --- |\n")
	for i, s := range o.Steps {
		name := code(s.Name)
		if i == o.Pivot {
			name += " (pivot)"
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", name, command(s.Command), outcomes(o.Outline, i), compensation(o.Outline, i))
	}
	return b.String()
}

func command(c *saga.CommandOutline) string {
	if c == nil {
		return "none"
	}
	return code(c.Name) + " on " + code(c.Topic)
}

// outcomes says where each reply to step i's command leads.
func outcomes(o saga.Outline, i int) string {
	s := o.Steps[i]
	next := "next"
	if i == len(o.Steps)-1 {
		next = "saga `COMPLETED`"
	}
	if s.Command == nil {
		return "no command: " + next
	}
	var parts []string
	for _, r := range s.Command.Replies {
		if r.Failure == "" {
			parts = append(parts, code(r.Name)+": "+next)
		} else {
			parts = append(parts, code(r.Name)+": fail "+code(r.Failure)+", "+undo(o, o.UndoFrom(i, false)))
		}
	}
	if s.Timeout != "" {
		parts = append(parts, "no answer: fail "+code(s.Timeout)+", "+undo(o, o.UndoFrom(i, true)))
	} else if i > o.Pivot {
		parts = append(parts, "no answer: re-sent until answered")
	}
	return strings.Join(parts, "; ")
}

// undo says what a failure leads to: the first compensation it runs, from
// step j down, or the saga's end.
func undo(o saga.Outline, j int) string {
	if j < 0 {
		return "saga `REJECTED`"
	}
	return "undo from " + code(o.Steps[j].Name)
}

// compensation says how step i is undone, and when.
func compensation(o saga.Outline, i int) string {
	c := o.Steps[i].Compensation
	if c == nil {
		return ""
	}
	var replies []string
	for _, r := range c.Replies {
		replies = append(replies, code(r.Name))
	}
	text := command(c) + ", answered " + strings.Join(replies, " or ")
	switch {
	case i > o.Pivot:
		text += " (never runs: the step is after the pivot)"
	case i == o.Pivot:
		text += " (runs only when the step's effect is unknown: it timed out, or an operator aborted the saga while it waited; unanswered too, the saga goes on without it)"
	case o.Steps[i].Timeout != "":
		text += " (when the step itself timed out, or an operator aborted the saga while it waited, and this goes unanswered too, the saga goes on without it)"
	}
	return text
}

// code is s as a code span in a table cell.
func code(s string) string { return "`" + strings.ReplaceAll(s, "|", `\|`) + "`" }
