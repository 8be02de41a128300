package deploy

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestDocsReferToWhatExists holds README.md and docs/*.md to the
// repository: every test they name is a func of a *_test.go, every path
// and relative link exists (a link's anchor too), every `make X` is a
// Makefile target, and none points outside the repository. It reports
// every broken reference, by file and line.
func TestDocsReferToWhatExists(t *testing.T) {
	root, err := repositoryRoot(".")
	if err != nil {
		t.Fatal(err)
	}
	repo, err := loadRepository(root)
	if err != nil {
		t.Fatal(err)
	}
	if len(repo.tests) == 0 || len(repo.targets) == 0 {
		t.Fatalf("found %d tests and %d Makefile targets under %s: is it the repository?", len(repo.tests), len(repo.targets), root)
	}
	docs, err := filepath.Glob(filepath.Join(root, "docs", "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	docs = append([]string{filepath.Join(root, "README.md")}, docs...)
	if len(docs) < 2 {
		t.Fatalf("no docs/*.md under %s", root)
	}
	for _, doc := range docs {
		text, err := os.ReadFile(doc)
		if err != nil {
			t.Fatal(err)
		}
		name, _ := filepath.Rel(root, doc)
		name = filepath.ToSlash(name)
		for _, p := range repo.checkDoc(name, string(text)) {
			t.Errorf("%s:%d: %s", name, p.line, p.msg)
		}
	}
}

// newRepository writes files (path: content, slash-separated; a path
// ending in / is a directory) to a temporary repository with a go.work and
// loads it.
func newRepository(t *testing.T, files map[string]string) *repository {
	t.Helper()
	root := t.TempDir()
	files["go.work"] = "go 1.26\n"
	for name, content := range files {
		p := filepath.Join(root, filepath.FromSlash(name))
		if strings.HasSuffix(name, "/") {
			if err := os.MkdirAll(p, 0o755); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	repo, err := loadRepository(root)
	if err != nil {
		t.Fatal(err)
	}
	return repo
}

func TestRepositoryRootIsWhereGoWorkIs(t *testing.T) {
	root := t.TempDir()
	deep := filepath.Join(root, "a", "b")
	if err := os.MkdirAll(deep, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "go.work"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := repositoryRoot(deep)
	if err != nil {
		t.Fatal(err)
	}
	if want, _ := filepath.EvalSymlinks(root); got != root && got != want {
		t.Errorf("repositoryRoot(%s) = %s, want %s", deep, got, root)
	}
	// Above a root there is none (unless the temporary directory itself is
	// under a workspace).
	if r, err := repositoryRoot(filepath.Dir(root)); err == nil && r == root {
		t.Errorf("repositoryRoot(%s) = %s, below it", filepath.Dir(root), r)
	}
}

// sampleRepository is a small repository for the checker's tests.
func sampleRepository(t *testing.T) *repository {
	return newRepository(t, map[string]string{
		".gitignore":                "/bin/\n/.data/\n*.out\n",
		"Makefile":                  ".PHONY: run test\nGO ?= go\nX := 1\n\n## run: it\nrun:\n\t$(GO) run .\n\ntest bench: run\n\t$(GO) test ./...\n",
		"platform/messaging/txn.go": "package messaging\n",
		"platform/messaging/txn_test.go": "package messaging\n\nimport \"testing\"\n\n" +
			"func TestTxnCommits(t *testing.T) {}\nfunc BenchmarkTxn(b *testing.B) {}\n" +
			"type s struct{}\n\nfunc (s) TestMethodIsNoTest(t *testing.T) {}\nfunc helperTest() {}\n",
		"system/cmd/bench/main.go": "package main\n",
		"docs/ops.md":              "# Operations\n\n## Dead letters\n\n## Dead letters\n\n## `make run`, then *Ctrl-C*!\n\nSetext\n------\n\n<a id=\"custom\"></a>\n",
		"docs/empty/":              "",
		"bin/devstack":             "",
	})
}

func TestTheCheckerFindsEveryBrokenReference(t *testing.T) {
	repo := sampleRepository(t)
	doc := strings.Join([]string{
		/* 1 */ "# Title",
		/* 2 */ "`TestTxnCommits` and BenchmarkTxn exist; `TestGone` does not, nor TestMethodIsNoTest.",
		/* 3 */ "See platform/messaging/txn.go and `platform/messaging/gone.go`, system/cmd/bench, docs/empty/ and docs/ops.md.",
		/* 4 */ "[ops](ops.md), [dead letters](ops.md#dead-letters-1), [run](ops.md#make-run-then-ctrl-c), [setext](ops.md#setext), [a](ops.md#custom).",
		/* 5 */ "[missing](nowhere.md) and [bad anchor](ops.md#dead-letters-2) and [self](#title) and [no self](#nothing).",
		/* 6 */ "[outside](../../shared/x.md) and `../../shared` and [web](https://example.com/a/b.md#x) and https://example.com/c/TestNotOurs.go.",
		/* 7 */ "Run `make run`, `SAGAS=1 make bench`, `make participant NAME=x`; to make things (prose) is not make.",
		/* 8 */ "Layout: `messaging/` and `cmd/bench` are relative, `cmd/gone` is not there; Pub/Sub is a word.",
		/* 9 */ "Images `apache/kafka:4.3.1`, `ghcr.io/kafbat/kafka-ui:v1`; outputs `bin/customer` and `.data/devstack`.",
		/* 10 */ "```sh",
		/* 11 */ "make test    # and make nothing, a comment",
		/* 12 */ "go run ./system/cmd/bench && go test ./... ./platform/... ./gone/... && curl localhost:8080/orders/$ID",
		/* 13 */ "```",
		/* 14 */ "A span across lines, `SAGAS=1",
		/* 15 */ "make lint`, and Makefile, Dockerfile, txn.go, gone.yml, saga/gone_test.go, **messaging/txn.go**.",
		/* 16 */ "[`make run`](ops.md#nowhere) and /healthz and `POST /orders` and `<customer id>/<order id>`.",
		/* 17 */ "   ```go",
		/* 18 */ "   func TestPlaceholder(t *testing.T) {} // docs/gone.md: make sure of it",
		/* 19 */ "   ```",
		/* 20 */ "```",
		/* 21 */ "messaging/txn.go    a layout tree: paths relative to what it shows",
		/* 22 */ "bench/gone.go",
		/* 23 */ "```",
		/* 24 */ "[def]: ops.md#gone",
		/* 25 */ "[root]: /docs/ops.md#custom",
		/* 26 */ "[web]: https://example.com/x",
		/* 27 */ "",
	}, "\n")
	want := []string{
		"2: TestGone: no func TestGone in any *_test.go",
		"2: TestMethodIsNoTest: no func TestMethodIsNoTest in any *_test.go",
		"3: platform/messaging/gone.go: no such file or directory",
		"5: link nowhere.md: no such file or directory",
		"5: link ops.md#dead-letters-2: docs/ops.md has no heading #dead-letters-2",
		"5: link #nothing: docs/x.md has no heading #nothing",
		"6: link ../../shared/x.md: outside the repository",
		"6: ../../shared: outside the repository",
		"7: make participant: the Makefile has no target participant",
		"8: cmd/gone: no such file or directory, nor a path ending so",
		"12: ./gone/: no such file or directory, nor a path ending so",
		"15: make lint: the Makefile has no target lint",
		"15: Dockerfile: no such file or directory",
		"15: gone.yml: no such file or directory, nor a path ending so",
		"15: saga/gone_test.go: no such file; a path with a directory starts at the repository root",
		"15: messaging/txn.go: no such file; a path with a directory starts at the repository root",
		"16: link ops.md#nowhere: docs/ops.md has no heading #nowhere",
		"18: TestPlaceholder: no func TestPlaceholder in any *_test.go",
		"18: docs/gone.md: no such file or directory",
		"22: bench/gone.go: no such file or directory, nor a path ending so",
		"24: link ops.md#gone: docs/ops.md has no heading #gone",
	}
	var got []string
	for _, p := range repo.checkDoc("docs/x.md", doc) {
		got = append(got, fmt.Sprintf("%d: %s", p.line, p.msg))
	}
	for _, w := range want {
		if !slices.Contains(got, w) {
			t.Errorf("not reported: %s", w)
		}
	}
	for _, g := range got {
		if !slices.Contains(want, g) {
			t.Errorf("reported, but not broken: %s", g)
		}
	}
}

// TestAPatchOfTheDocsNamesWhatItCreates: a document that walks through a
// patch of docs/ may name the files, directories and tests it adds, and
// nothing else that does not exist.
func TestAPatchOfTheDocsNamesWhatItCreates(t *testing.T) {
	repo := newRepository(t, map[string]string{
		"docs/example/stock.patch": "diff --git a/services/stock/stock_test.go b/services/stock/stock_test.go\n" +
			"new file mode 100644\n--- /dev/null\n+++ b/services/stock/stock_test.go\n@@ -0,0 +1,2 @@\n" +
			"+func TestStockIsKept(t *testing.T) {}\n+func helper() {}\n",
	})
	doc := "See services/stock/stock_test.go in `services/stock/` and TestStockIsKept; services/gone.go and TestGone are not.\n"
	var got []string
	for _, p := range repo.checkDoc("docs/x.md", doc) {
		got = append(got, fmt.Sprintf("%d: %s", p.line, p.msg))
	}
	want := []string{"1: services/gone.go: no such file or directory", "1: TestGone: no func TestGone in any *_test.go"}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestAnchorsAreGitHubs(t *testing.T) {
	doc := strings.Join([]string{
		"# Two corrections to the bench",
		"## `make run`, then *Ctrl-C*!",
		"### C++ & Go",
		"## Ünïcode café: 1.5× faster",
		"## [A link](x.md) and <code>html</code>",
		"## Repeated", "## Repeated", "## Repeated-1",
		"```sh",
		"# not a heading",
		"```",
		"Setext",
		"======",
		"| a | b |",
		"| --- | --- |",
		"#hashtag is no heading",
	}, "\n")
	want := []string{
		"two-corrections-to-the-bench",
		"make-run-then-ctrl-c",
		"c--go",
		"ünïcode-café-15-faster",
		"a-link-and-html",
		"repeated", "repeated-1", "repeated-1-1",
		"setext",
	}
	if got := anchors(doc); !slices.Equal(got, want) {
		t.Errorf("anchors:\n got %q\nwant %q", got, want)
	}
}
