package deploy

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// goGenerate matches a //go:generate directive and the file it writes (-o).
var (
	goGenerate = regexp.MustCompile(`(?m)^//go:generate (.+)$`)
	outputFlag = regexp.MustCompile(`-o (\S+)`)
)

// TestGeneratedFilesAreFresh runs every //go:generate directive of the
// contracts and saga modules with its output sent to a temporary file, and
// fails when the committed file differs: a schema or interaction edited
// without `make contracts` is found here, not at run time.
func TestGeneratedFilesAreFresh(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the generators")
	}
	root, err := repositoryRoot(".")
	if err != nil {
		t.Fatal(err)
	}
	var checked int
	for _, module := range []string{"contracts", "saga"} {
		dir := filepath.Join(root, module)
		text, err := os.ReadFile(filepath.Join(dir, "generate.go"))
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range goGenerate.FindAllStringSubmatch(string(text), -1) {
			// A shell sorts a glob by its locale's collation (en_US puts
			// OrderCancelled before OrderCancelRequested, C after), and
			// avrogen writes the types in the order it is given them.
			if strings.Contains(d[1], "*") && !strings.HasPrefix(d[1], "env LC_ALL=C ") {
				t.Errorf("%s/generate.go: %q expands a glob in the shell's locale: want it run under env LC_ALL=C", module, d[1])
			}
			out := outputFlag.FindStringSubmatch(d[1])
			if out == nil {
				t.Fatalf("%s/generate.go: %q names no -o file", module, d[1])
			}
			fresh := filepath.Join(t.TempDir(), out[1])
			cmd := exec.Command("sh", "-c", strings.Replace(d[1], out[0], "-o "+fresh, 1))
			cmd.Dir = dir
			if msg, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("%s: %s: %v\n%s", module, d[1], err, msg)
			}
			want, err := os.ReadFile(fresh)
			if err != nil {
				t.Fatal(err)
			}
			got, err := os.ReadFile(filepath.Join(dir, out[1]))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("%s/%s differs from what %q writes: run make contracts", module, out[1], d[1])
			}
			checked++
		}
	}
	if checked < 5 {
		t.Errorf("checked %d generated files, want the 5 of contracts and saga", checked)
	}
}
