package main

import (
	"crypto/sha256"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
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
		{"payment", "system.Processes has a process of that name already"},
		{"orchestrator", "system.Processes has a process of that name already"},
		{"kafka", "system.Config has a field Kafka already"},
		{"config", "imports github.com/kafkasaga/kafkasaga/platform/config as config already"},
		{"stock", "services/stock exists already"},
	}
	for _, tt := range tests {
		err := run(dir, tt.name, io.Discard)
		if err == nil || !strings.Contains(err.Error(), `name "`+tt.name+`"`) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("make participant NAME=%s: got %v, want an error naming it and saying %q", tt.name, err, tt.want)
		}
		if after := tree(t, dir); !maps.Equal(after, before) {
			t.Fatalf("make participant NAME=%s: the tree changed, want nothing written", tt.name)
		}
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
