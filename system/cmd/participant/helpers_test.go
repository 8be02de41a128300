package main

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/kafkasaga/kafkasaga/system"
)

// fromTheTemplate skips a test of docs/adding-a-saga-step.md's walkthrough
// once the repository has processes of its own beside the template's: the
// walkthrough adds the first participant, inventory, on port 8085, and
// would only fail there.
func fromTheTemplate(t *testing.T) {
	t.Helper()
	if names := system.Names(); !slices.Equal(names, []string{"order", "customer", "payment", "orchestrator"}) {
		t.Skipf("the repository has moved on from the template (processes %v): the walkthrough of docs/adding-a-saga-step.md adds the first participant", names)
	}
}

// root is the repository's root, from this package's directory.
const root = "../../.."

// patchFile is the worked example of docs/adding-a-saga-step.md: what a
// user writes by hand, after make participant NAME=inventory, to add the
// ReserveInventory step to the Create Order saga.
const patchFile = root + "/docs/adding-a-saga-step/reserve-inventory.patch"

// copyRepository copies the repository's files (git's tracked and
// untracked ones, not what .gitignore leaves out) into a temporary
// directory and returns it.
func copyRepository(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("git", "-C", root, "ls-files", "-z", "--cached", "--others", "--exclude-standard").Output()
	if err != nil {
		t.Fatalf("git ls-files: %v", err)
	}
	dir := t.TempDir()
	for _, name := range strings.Split(strings.TrimRight(string(out), "\x00"), "\x00") {
		info, err := os.Lstat(filepath.Join(root, name))
		if os.IsNotExist(err) {
			continue // deleted, not yet committed
		}
		if err != nil {
			t.Fatal(err)
		}
		if !info.Mode().IsRegular() {
			continue
		}
		text, err := os.ReadFile(filepath.Join(root, name))
		if err != nil {
			t.Fatal(err)
		}
		dst := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dst, text, info.Mode().Perm()); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// patched is one file of a patch: its path, the lines it has after the
// patch in its hunks (context and added), and its added lines in runs, a
// run a block of consecutive added lines.
type patched struct {
	path  string
	after []string
	added [][]string
}

// readPatch parses a unified diff as git writes it.
func readPatch(t *testing.T, path string) []patched {
	t.Helper()
	text, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var files []patched
	var run []string
	endRun := func() {
		if len(run) > 0 {
			files[len(files)-1].added = append(files[len(files)-1].added, run)
			run = nil
		}
	}
	s := bufio.NewScanner(bytes.NewReader(text))
	for s.Scan() {
		line := s.Text()
		switch {
		case strings.HasPrefix(line, "diff --git "):
			endRun()
			files = append(files, patched{})
		case strings.HasPrefix(line, "+++ b/"):
			files[len(files)-1].path = strings.TrimPrefix(line, "+++ b/")
		case strings.HasPrefix(line, "--- "), strings.HasPrefix(line, "@@"), len(files) == 0:
			endRun()
		case strings.HasPrefix(line, "+"):
			f := &files[len(files)-1]
			f.after = append(f.after, line[1:])
			run = append(run, line[1:])
		case strings.HasPrefix(line, " "):
			endRun()
			f := &files[len(files)-1]
			f.after = append(f.after, line[1:])
		default: // a removed line, or the diff's headers
			endRun()
		}
	}
	endRun()
	if len(files) == 0 {
		t.Fatalf("%s: no files", path)
	}
	return files
}

// normalize folds whitespace, which differs between Go and Markdown.
func normalize(s string) string { return strings.Join(strings.Fields(s), " ") }

// goCommand runs go with args in dir with the module cache and proxy the
// test runs with, and returns its output; it fails the test with the
// output if the command fails.
func goCommand(t *testing.T, dir string, args ...string) []byte {
	t.Helper()
	cmd := exec.Command("go", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOWORK=")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("in %s, go %s: %v\n%s", dir, strings.Join(args, " "), err, out)
	}
	return out
}
