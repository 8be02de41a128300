package main

import (
	"crypto/sha256"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// TestABadNameWritesNothing: a name that cannot be a participant's is
// refused with the reason, before anything is written.
func TestABadNameWritesNothing(t *testing.T) {
	dir := copyRepository(t)
	if err := os.MkdirAll(filepath.Join(dir, "services", "stock"), 0o755); err != nil {
		t.Fatal(err)
	}
	before := tree(t, dir)
	tests := []struct {
		name string
		want string // in the error
	}{
		{"Inventory-2", "want a Go package name of lowercase letters and digits"},
		{"inventory_2", "want a Go package name of lowercase letters and digits"},
		{"2inventory", "want a Go package name of lowercase letters and digits"},
		{"", "want a Go package name of lowercase letters and digits"},
		{"func", "not a keyword or main"},
		{"main", "not a keyword or main"},
		{"init", "not init, internal, vendor or testdata"},
		{"internal", "not init, internal, vendor or testdata"},
		{"vendor", "not init, internal, vendor or testdata"},
		{"testdata", "not init, internal, vendor or testdata"},
		{"payment", "system.Processes has a process of that name already"},
		{"orchestrator", "system.Processes has a process of that name already"},
		{"kafka", "system.Config has a field Kafka already"},
		{"config", "imports github.com/kafkasaga/kafkasaga/platform/config as config already"},
		{"stock", "services/stock exists already"},
		{"provision", "system/cmd/provision is a binary of that name already"},
		{"kafkasaga", "system/cmd/kafkasaga is a binary of that name already"},
		{"define", "package system declares define already"},
		{"credit", "contracts/schemas/ReserveCredit.avsc exists already"},
		{"string", "a predeclared Go identifier"},
		{"any", "a predeclared Go identifier"},
		{"status", "declares Status twice (both in services/status/domain/status.go)"},
		{"service", "docker-compose.yml has an anchor &service"},
		{"traces", "docker-compose.yml has an anchor &traces"},
		{"api", "avrogen would name the record ReserveApi's Go type ReserveAPI"},
		{"id", "avrogen would name the record ReserveId's Go type ReserveID"},
		{"aux", `"aux" disallowed as path element component on Windows`},
		{"v2", "invalid version"},
	}
	for _, tt := range tests {
		err := run(t.Context(), dir, tt.name, io.Discard)
		if err == nil || !strings.Contains(err.Error(), `name "`+tt.name+`"`) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("make participant NAME=%s: got %v, want an error naming it and saying %q", tt.name, err, tt.want)
		}
		if after := tree(t, dir); !maps.Equal(after, before) {
			t.Fatalf("make participant NAME=%s: the tree changed, want nothing written", tt.name)
		}
	}
}

// TestAFailureOnTheWayPutsEverythingBack: a go command that fails once
// the files are written (offline, say) leaves the tree as it was, the go
// commands' own edits of go.work and go.mod included, so that make
// participant runs again.
func TestAFailureOnTheWayPutsEverythingBack(t *testing.T) {
	dir := copyRepository(t)
	before := tree(t, dir)
	goCmd, err := exec.LookPath("go")
	if err != nil {
		t.Fatal(err)
	}
	bin := t.TempDir()
	script := "#!/bin/sh\nif [ \"$1\" = generate ]; then echo offline >&2; exit 1; fi\nexec " + goCmd + " \"$@\"\n"
	if err := os.WriteFile(filepath.Join(bin, "go"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", bin+string(os.PathListSeparator)+os.Getenv("PATH"))
	err = run(t.Context(), dir, "inventory", io.Discard)
	if err == nil || !strings.Contains(err.Error(), "offline") || !strings.Contains(err.Error(), "every file is as it was before") {
		t.Fatalf("got %v, want the go command's error and the files put back", err)
	}
	after := tree(t, dir)
	var changed []string
	for p, h := range after {
		if was, ok := before[p]; !ok || was != h {
			changed = append(changed, p)
		}
	}
	for p := range before {
		if _, ok := after[p]; !ok {
			changed = append(changed, p)
		}
	}
	if len(changed) > 0 {
		slices.Sort(changed)
		t.Errorf("%d paths written, changed or removed: %v", len(changed), changed)
	}
}

// tree returns every file and directory under dir with a hash of its content.
func tree(t *testing.T, dir string) map[string][32]byte {
	t.Helper()
	files := map[string][32]byte{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			files[p] = [32]byte{}
			return err
		}
		text, err := os.ReadFile(p)
		files[p] = sha256.Sum256(text)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// TestThePatchIsSmall holds the worked example to what the scaffold
// promises: after make participant, a step takes at most six hand-edited
// files and about 150 lines, none of them in generated files.
func TestThePatchIsSmall(t *testing.T) {
	files := readPatch(t, patchFile)
	var added int
	for _, f := range files {
		for _, run := range f.added {
			added += len(run)
		}
		if strings.HasSuffix(f.path, "_gen.go") || strings.HasPrefix(f.path, "docs/") {
			t.Errorf("%s: a generated file, want only hand-edited ones in the patch", f.path)
		}
	}
	if len(files) > 6 {
		t.Errorf("the patch edits %d files, want at most 6", len(files))
	}
	if added > 170 {
		t.Errorf("the patch adds %d lines, want about 150, at most 170", added)
	}
	t.Logf("%d files, %d lines added", len(files), added)
}

// TestDocShowsTheScaffoldAndThePatch keeps the walkthrough of
// docs/adding-a-saga-step.md true: each code block of its section "A new
// participant" is what make participant NAME=inventory writes or what the
// patch leaves, and every run of lines the patch adds outside tests is
// shown, but for imports; its table says how many lines each file gets.
func TestDocShowsTheScaffoldAndThePatch(t *testing.T) {
	fromTheTemplate(t)
	text, err := os.ReadFile(root + "/docs/adding-a-saga-step.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(text)
	start := strings.Index(doc, "\n## A new participant")
	if start < 0 {
		t.Fatal(`docs/adding-a-saga-step.md has no section "A new participant"`)
	}
	section := doc[start+1:]
	if end := strings.Index(section, "\n## "); end >= 0 {
		section = section[:end]
	}

	scaffold, err := plan(root, "inventory")
	if err != nil {
		t.Fatal(err)
	}
	var written []string // normalized: each file the scaffold writes, and each file's lines after the patch
	for _, text := range scaffold {
		written = append(written, normalize(string(text)))
	}
	patch := readPatch(t, patchFile)
	for _, f := range patch {
		written = append(written, normalize(strings.Join(f.after, "\n")))
	}

	blocks := fencedBlocks(section, strings.Count(doc[:start+1], "\n"))
	var shown []string
	commands := false
	for _, b := range blocks {
		if b.lang == "sh" {
			commands = commands || strings.Contains(b.text, "make participant NAME=inventory")
			continue
		}
		shown = append(shown, normalize(b.text))
		if !slices.ContainsFunc(written, func(w string) bool { return strings.Contains(w, normalize(b.text)) }) {
			t.Errorf("docs/adding-a-saga-step.md:%d: a %s block that neither make participant nor the patch writes:\n%s", b.line, b.lang, b.text)
		}
	}
	if !commands {
		t.Error("the section shows no `make participant NAME=inventory`")
	}
	// The section's figures: the lines each file gets, and all of them.
	var total int
	for _, f := range patch {
		added := 0
		for _, run := range f.added {
			added += len(run)
		}
		total += added
		if row := fmt.Sprintf("| `%s` | %d |", f.path, added); !strings.Contains(section, row) {
			t.Errorf("the section's table has no row %q: the patch adds %d lines to %s", row, added, f.path)
		}
	}
	if want := fmt.Sprintf("%d lines", total); !strings.Contains(section, want) {
		t.Errorf("the section does not say %q, what the patch adds", want)
	}
	for _, f := range patch {
		if strings.HasSuffix(f.path, "_test.go") {
			continue // the tests are described, in part
		}
		for _, run := range f.added {
			text := normalize(strings.Join(run, "\n"))
			if importSpec.MatchString(text) {
				continue // what the compiler asks for
			}
			if text != "" && !slices.ContainsFunc(shown, func(s string) bool { return strings.Contains(s, text) }) {
				t.Errorf("%s: the section does not show the lines the patch adds:\n%s", f.path, strings.Join(run, "\n"))
			}
		}
	}
}

// importSpec is a line of an import block, normalized.
var importSpec = regexp.MustCompile(`^(\w+ )?"[^"]+"$`)

// block is a fenced code block of a Markdown document.
type block struct {
	lang, text string
	line       int // of the opening fence
}

// fencedBlocks returns the fenced blocks of doc, a part of a document that
// starts after its line offset.
func fencedBlocks(doc string, offset int) []block {
	var blocks []block
	var cur *block
	for i, line := range strings.Split(doc, "\n") {
		trimmed := strings.TrimSpace(line)
		switch {
		case cur == nil && strings.HasPrefix(trimmed, "```"):
			cur = &block{lang: strings.TrimPrefix(trimmed, "```"), line: offset + i + 1}
		case cur != nil && trimmed == "```":
			blocks = append(blocks, *cur)
			cur = nil
		case cur != nil:
			cur.text += line + "\n"
		}
	}
	return blocks
}
