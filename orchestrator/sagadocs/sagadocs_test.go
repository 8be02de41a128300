package sagadocs_test

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/kafkasaga/kafkasaga/orchestrator/sagadocs"
	"github.com/kafkasaga/kafkasaga/orchestrator/service"
)

// root is the repository's root, from this package's directory.
const root = "../.."

// TestSagaDocsMatchTheDefinitions fails when a committed page of docs/sagas
// differs from what the definitions the orchestrator runs render, is
// missing, or is of a saga type it no longer runs.
func TestSagaDocsMatchTheDefinitions(t *testing.T) {
	pages := sagadocs.Pages(service.Outlines())
	for _, name := range sortedKeys(pages) {
		file := filepath.ToSlash(filepath.Join(sagadocs.Dir, name))
		committed, err := os.ReadFile(filepath.Join(root, sagadocs.Dir, name))
		switch {
		case os.IsNotExist(err):
			t.Errorf("%s is missing: run `make docs` and commit it", file)
		case err != nil:
			t.Fatal(err)
		case string(committed) != pages[name]:
			line, got, want := firstDifference(string(committed), pages[name])
			t.Errorf("%s differs from the saga definitions at line %d:\n committed: %q\n rendered:  %q\nrun `make docs` and commit it", file, line, got, want)
		}
	}
	present, err := filepath.Glob(filepath.Join(root, sagadocs.Dir, "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range present {
		if _, ok := pages[filepath.Base(p)]; !ok {
			t.Errorf("%s/%s is of no saga type the orchestrator runs: run `make docs`, which removes it, and commit that", sagadocs.Dir, filepath.Base(p))
		}
	}
}

// The pivot's compensation runs when its step's effect is unknown: the
// step timed out, or an operator aborted the saga while it waited, as the
// engine compensates (saga/actions.go); the pages said only the first.
func TestThePivotsCompensationSaysWhenItRuns(t *testing.T) {
	for _, o := range service.Outlines() {
		page := sagadocs.Pages([]service.Outline{o})[sagadocs.FileName(o.Type)]
		row := ""
		for line := range strings.Lines(page) {
			if strings.Contains(line, "(pivot) |") {
				row = line
			}
		}
		if !strings.Contains(row, "timed out") || !strings.Contains(row, "aborted") {
			t.Errorf("saga %s: the pivot's row does not say its compensation runs when the step timed out or was aborted: %q", o.Type, row)
		}
	}
}

func TestEverySagaTypeHasAPage(t *testing.T) {
	outlines := service.Outlines()
	if len(outlines) < 2 {
		t.Fatalf("%d saga types, want the orchestrator's list (Create Order and Cancel Order at least)", len(outlines))
	}
	pages := sagadocs.Pages(outlines)
	index := pages[sagadocs.Index]
	for _, o := range outlines {
		page, ok := pages[sagadocs.FileName(o.Type)]
		if !ok {
			t.Errorf("saga %s has no page", o.Type)
			continue
		}
		if o.Description == "" {
			t.Errorf("saga %s: its definition has no Description, the sentence its page opens with", o.Type)
		}
		if !strings.Contains(index, "("+sagadocs.FileName(o.Type)+")") {
			t.Errorf("the index does not link saga %s's page", o.Type)
		}
		if !strings.Contains(page, "```mermaid\n"+o.Mermaid()+"```\n") {
			t.Errorf("saga %s's page does not hold its diagram", o.Type)
		}
		// A table row per step, in order, the pivot marked.
		var rows []string
		for _, l := range strings.Split(page, "\n") {
			if strings.HasPrefix(l, "| `") {
				rows = append(rows, l)
			}
		}
		if len(rows) != len(o.Steps) {
			t.Errorf("saga %s: %d rows of steps, want %d", o.Type, len(rows), len(o.Steps))
			continue
		}
		for i, s := range o.Steps {
			want := "| `" + s.Name + "`"
			if i == o.Pivot {
				want += " (pivot)"
			}
			if !strings.HasPrefix(rows[i], want+" |") {
				t.Errorf("saga %s: row %d is %q, want it to start %q", o.Type, i, rows[i], want)
			}
			if s.Command != nil && !strings.Contains(rows[i], "`"+s.Command.Name+"` on `"+s.Command.Topic+"`") {
				t.Errorf("saga %s: row %d does not name the command %s", o.Type, i, s.Command.Name)
			}
		}
	}
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// firstDifference returns the first line (1-based) where a and b differ,
// and that line of each.
func firstDifference(a, b string) (int, string, string) {
	la, lb := strings.Split(a, "\n"), strings.Split(b, "\n")
	for i := 0; ; i++ {
		var x, y string
		if i < len(la) {
			x = la[i]
		}
		if i < len(lb) {
			y = lb[i]
		}
		if x != y || i >= len(la) || i >= len(lb) {
			return i + 1, x, y
		}
	}
}
