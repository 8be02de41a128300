package deploy

import (
	"cmp"
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode"
)

// This file checks what a Markdown document of the repository refers to:
// Go tests and benchmarks, repository paths, relative links and their
// anchors, and Makefile targets. docs_test.go runs it on the documents.

// repository is what a document may refer to, read from the files on disk.
type repository struct {
	root string
	// paths holds every file and directory, slash-separated and relative to
	// root; the value says whether it is a directory.
	paths map[string]bool
	// ignored holds the top-level names .gitignore anchors at the root
	// (".data", "bin"): what builds and runs leave, not part of the
	// repository, so a path into one is not checked.
	ignored map[string]bool
	tests   map[string]bool // the Test, Benchmark and Fuzz funcs of every *_test.go
	targets map[string]bool // the Makefile's targets
}

// repositoryRoot returns the directory holding go.work: dir or the nearest
// one above it.
func repositoryRoot(dir string) (string, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	for d := dir; ; {
		if _, err := os.Stat(filepath.Join(d, "go.work")); err == nil {
			return d, nil
		}
		parent := filepath.Dir(d)
		if parent == d {
			return "", fmt.Errorf("no go.work in %s or above it", dir)
		}
		d = parent
	}
}

// makeRule matches a rule's targets in a Makefile ("a b: deps"), not a
// variable (":=", "::=") or a recipe line.
var makeRule = regexp.MustCompile(`(?m)^([A-Za-z0-9_.%/-][A-Za-z0-9_.%/ \t-]*?)[ \t]*::?(?:[^=:]|$)`)

func loadRepository(root string) (*repository, error) {
	r := &repository{root: root, paths: map[string]bool{}, ignored: map[string]bool{".git": true},
		tests: map[string]bool{}, targets: map[string]bool{}}
	gitignore, err := os.ReadFile(filepath.Join(root, ".gitignore"))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	for _, line := range strings.Split(string(gitignore), "\n") {
		line = strings.TrimSpace(line)
		name := strings.TrimSuffix(strings.TrimPrefix(line, "/"), "/")
		if strings.HasPrefix(line, "/") && name != "" && !strings.ContainsAny(name, "/*?[") {
			r.ignored[name] = true
		}
	}
	fset := token.NewFileSet()
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, p)
		if err != nil || rel == "." {
			return err
		}
		rel = filepath.ToSlash(rel)
		if r.ignored[strings.SplitN(rel, "/", 2)[0]] {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		r.paths[rel] = d.IsDir()
		if d.IsDir() || !strings.HasSuffix(rel, "_test.go") || slices.Contains(strings.Split(rel, "/"), "testdata") {
			return nil
		}
		f, err := parser.ParseFile(fset, p, nil, parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		for _, decl := range f.Decls {
			if fn, ok := decl.(*ast.FuncDecl); ok && fn.Recv == nil && testName.MatchString(fn.Name.Name) {
				r.tests[fn.Name.Name] = true
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if err := r.addPatches(); err != nil {
		return nil, err
	}
	makefile, err := os.ReadFile(filepath.Join(root, "Makefile"))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	for _, m := range makeRule.FindAllStringSubmatch(string(makefile), -1) {
		for _, name := range strings.Fields(m[1]) {
			if !strings.HasPrefix(name, ".") && !strings.Contains(name, "%") {
				r.targets[name] = true
			}
		}
	}
	return r, nil
}

// patchTest is a test func a patch adds.
var patchTest = regexp.MustCompile(`^\+func ((?:Test|Benchmark|Fuzz)\w*)\(`)

// addPatches adds what each patch of the docs (docs/**/*.patch, a worked
// example) creates, its files, their directories and its tests: the
// document that walks through it names them.
func (r *repository) addPatches() error {
	var patches []string
	for p, isDir := range r.paths {
		if !isDir && strings.HasPrefix(p, "docs/") && strings.HasSuffix(p, ".patch") {
			patches = append(patches, p)
		}
	}
	for _, p := range patches {
		text, err := os.ReadFile(filepath.Join(r.root, filepath.FromSlash(p)))
		if err != nil {
			return err
		}
		for _, line := range strings.Split(string(text), "\n") {
			if file, ok := strings.CutPrefix(line, "+++ b/"); ok {
				segs := strings.Split(file, "/")
				for i := range segs {
					if _, seen := r.paths[strings.Join(segs[:i+1], "/")]; !seen {
						r.paths[strings.Join(segs[:i+1], "/")] = i < len(segs)-1
					}
				}
			}
			if m := patchTest.FindStringSubmatch(line); m != nil && testName.MatchString(m[1]) {
				r.tests[m[1]] = true
			}
		}
	}
	return nil
}

// problem is a broken reference of a document, at a line (1-based).
type problem struct {
	line int
	msg  string
}

var (
	// testName is a Go test, benchmark or fuzz test: Test, then not a
	// lower-case letter (so "Testing" is a word, not a test).
	testName = regexp.MustCompile(`^(?:Test|Benchmark|Fuzz)(?:[^\p{Ll}]|$)`)
	testRef  = regexp.MustCompile(`\b(?:Test|Benchmark|Fuzz)[\p{Lu}\p{N}_]\w*`)
	// webURL is an absolute link to the public web; it is not fetched.
	webURL = regexp.MustCompile(`(?i)\b(?:https?|mailto):[^\s<>"'` + "`" + `)\]]+`)
	// link is an inline link or image, [text](destination "title"), or a
	// link reference definition, [label]: destination.
	link = regexp.MustCompile(`!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*(<[^>\n]*>|[^\s()]*(?:\([^\s()]*\)[^\s()]*)*)(?:\s+(?:"[^"]*"|'[^']*'))?\s*\)` +
		`|(?m)^ {0,3}\[[^\]]+\]:[ \t]*(<[^>\n]*>|\S+)`)
	scheme = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9+.-]*:`)
	// pathRun is a run of the characters a repository path is spelt with.
	pathRun = regexp.MustCompile(`[A-Za-z0-9_.*/-]+`)
	// makeCall is `make` and its arguments, up to a comment or another command.
	makeCall     = regexp.MustCompile(`(?:^|[\s;&|(` + "`" + `])make((?:[ \t]+[^\s#;&|)` + "`" + `]+)+)`)
	makeTarget   = regexp.MustCompile(`^[A-Za-z0-9_][\w.-]*$`)
	shellComment = regexp.MustCompile(`(?m)(?:^|[ \t])#.*$`)
	// hostLike is the first element of a module path or image name
	// (github.com/..., ghcr.io/...), not of a repository path.
	hostLike = regexp.MustCompile(`^[a-z0-9-]+(?:\.[a-z0-9-]+)+$`)
)

// pathExtensions are the endings that make a word a file name.
var pathExtensions = []string{".go", ".md", ".yml", ".yaml", ".avsc", ".sh", ".json"}

// rootFiles are file names without an extension that are found at the root.
var rootFiles = []string{"Makefile", "Dockerfile", "go.work", "go.work.sum"}

// piece is a part of a document: prose, a code span, or a line of a
// fenced block; it starts at line.
type piece struct {
	text   string
	line   int
	code   bool // a code span or fenced
	fenced bool
	shell  bool // a code span, or a line of a shell block: where `make X` is a command
}

// shells are the languages of a fenced block that may run make.
var shells = []string{"", "sh", "bash", "shell", "console", "zsh", "make", "makefile"}

// lineOf returns the line of the byte at i of the piece.
func (p piece) lineOf(i int) int { return p.line + strings.Count(p.text[:i], "\n") }

// checkDoc returns every broken reference of the Markdown document text,
// found at name (slash-separated, relative to the root), by line.
func (r *repository) checkDoc(name, text string) []problem {
	var problems []problem
	report := func(line int, format string, args ...any) {
		problems = append(problems, problem{line, fmt.Sprintf(format, args...)})
	}
	own := anchors(text)
	for _, b := range blocks(text) {
		if b.fenced {
			r.checkPiece(name, piece{text: webURL.ReplaceAllStringFunc(b.text, blank), line: b.line, code: true, fenced: true,
				shell: slices.Contains(shells, b.lang)}, report)
			continue
		}
		spans := codeSpans(b.text)
		inSpan := func(i int) bool {
			return slices.ContainsFunc(spans, func(s [2]int) bool { return s[0] <= i && i < s[1] })
		}
		// Links, then blank their destinations so that a broken one is
		// reported once, as a link.
		prose := []byte(b.text)
		for _, m := range link.FindAllStringSubmatchIndex(b.text, -1) {
			if inSpan(m[0]) {
				continue
			}
			if m[2] < 0 { // a definition
				m[2], m[3] = m[4], m[5]
			}
			line := b.line + strings.Count(b.text[:m[0]], "\n")
			if msg := r.checkLink(name, b.text[m[2]:m[3]], own); msg != "" {
				report(line, "%s", msg)
			}
			copy(prose[m[2]:m[3]], blank(b.text[m[2]:m[3]]))
		}
		text := webURL.ReplaceAllStringFunc(string(prose), blank)
		at := 0
		for _, s := range append(spans, [2]int{len(text), len(text)}) {
			line := b.line + strings.Count(text[:at], "\n")
			r.checkPiece(name, piece{text: text[at:s[0]], line: line}, report)
			if s[0] < s[1] {
				line = b.line + strings.Count(text[:s[0]], "\n")
				r.checkPiece(name, piece{text: text[s[0]:s[1]], line: line, code: true, shell: true}, report)
			}
			at = s[1]
		}
	}
	slices.SortStableFunc(problems, func(a, b problem) int { return cmp.Compare(a.line, b.line) })
	return problems
}

// blank replaces every character of s but line breaks by spaces, keeping
// the offsets and lines of what follows.
func blank(s string) string {
	return strings.Map(func(c rune) rune {
		if c == '\n' {
			return c
		}
		return ' '
	}, s)
}

// checkPiece reports the tests, Makefile targets and paths of p that do not exist.
func (r *repository) checkPiece(doc string, p piece, report func(int, string, ...any)) {
	for _, m := range testRef.FindAllStringIndex(p.text, -1) {
		if name := p.text[m[0]:m[1]]; !r.tests[name] {
			report(p.lineOf(m[0]), "%s: no func %s in any *_test.go", name, name)
		}
	}
	if p.shell {
		// A shell comment is prose: "# make it work" calls nothing.
		uncommented := shellComment.ReplaceAllStringFunc(p.text, blank)
		for _, m := range makeCall.FindAllStringSubmatchIndex(uncommented, -1) {
			for _, arg := range strings.Fields(uncommented[m[2]:m[3]]) {
				if strings.HasPrefix(arg, "-") || strings.Contains(arg, "=") {
					continue // a flag or a variable
				}
				if !makeTarget.MatchString(arg) {
					break
				}
				if !r.targets[arg] {
					report(p.lineOf(m[2]), "make %s: the Makefile has no target %s", arg, arg)
				}
			}
		}
	}
	for _, m := range pathRun.FindAllStringIndex(p.text, -1) {
		if m[0] > 0 && strings.ContainsRune(":$@%~\\", rune(p.text[m[0]-1])) {
			continue // host:port, $VAR/..., image@digest
		}
		// "name:" in code is a label or an image's name:tag, not a path
		followedByColon := m[1] < len(p.text) && p.text[m[1]] == ':'
		if msg := r.checkPath(doc, p.text[m[0]:m[1]], p.code && !followedByColon, p.fenced); msg != "" {
			report(p.lineOf(m[0]), "%s", msg)
		}
	}
}

// checkPath returns what is wrong with word as a repository path, or "" if
// it names something that exists or is not a path.
//
// A word is a path if it ends in a file extension of pathExtensions, is
// one of rootFiles, or has a slash and starts at a top-level entry of the
// repository or at "..". A file name alone ("main.go") names some file of
// the repository. A path with a slash starts at the root, but for two
// kinds that name the end of an existing path, relative to a directory the
// text speaks of: in code (relative), a word with a slash that starts
// elsewhere ("domain/", "cmd/devstack"); in a fenced block, such as a
// layout tree, a file too ("schemas/*.avsc" under contracts/).
func (r *repository) checkPath(doc, word string, relative, fenced bool) string {
	word = strings.TrimRight(word, ".")                                  // the end of a sentence, or of a Go package pattern
	for strings.HasPrefix(word, "**") || strings.HasSuffix(word, "**") { // bold
		word = strings.TrimRight(strings.TrimSuffix(strings.TrimPrefix(word, "**"), "**"), ".")
	}
	shown := word
	dir := strings.HasSuffix(word, "/") // "./platform/..." is a directory too
	word = strings.TrimSuffix(word, "/")
	for strings.HasPrefix(word, "./") {
		word = word[2:]
	}
	if word == "" || word == "." || strings.HasPrefix(word, "/") || strings.HasPrefix(word, "-") || strings.Trim(word, "*") == "" {
		return ""
	}
	if dir {
		word += "/"
	}
	segs := strings.Split(strings.TrimSuffix(word, "/"), "/")
	if slices.Contains(segs, "") || r.ignored[segs[0]] {
		return ""
	}
	last := segs[len(segs)-1]
	isFile := slices.ContainsFunc(pathExtensions, func(ext string) bool {
		return strings.HasSuffix(last, ext) && len(last) > len(ext)
	})
	rootFile := len(segs) == 1 && slices.Contains(rootFiles, last)
	slash := len(segs) > 1 || dir
	_, top := r.paths[segs[0]]
	switch {
	case segs[0] == "..":
		joined := path.Join(path.Dir(doc), word)
		if joined == ".." || strings.HasPrefix(joined, "../") {
			return fmt.Sprintf("%s: outside the repository", shown)
		}
		if !r.exists(joined, dir, false) {
			return fmt.Sprintf("%s: no such file or directory", shown)
		}
	case top && (slash || isFile) || rootFile:
		if !r.exists(word, dir, false) {
			return fmt.Sprintf("%s: no such file or directory", shown)
		}
	case slash && hostLike.MatchString(segs[0]):
		// a module path or an image name
	case slash && isFile && !fenced:
		return fmt.Sprintf("%s: no such file; a path with a directory starts at the repository root", shown)
	case isFile || slash && relative:
		if !r.exists(word, dir, true) {
			return fmt.Sprintf("%s: no such file or directory, nor a path ending so", shown)
		}
	}
	return ""
}

// exists reports whether pattern (which may hold * and ?) matches a path of
// the repository, a directory if dir; with suffix, the end of one.
func (r *repository) exists(pattern string, dir, suffix bool) bool {
	want := strings.Split(strings.TrimSuffix(pattern, "/"), "/")
	for p, isDir := range r.paths {
		if dir && !isDir {
			continue
		}
		segs := strings.Split(p, "/")
		if len(segs) < len(want) || !suffix && len(segs) != len(want) {
			continue
		}
		if ok, _ := path.Match(strings.Join(want, "/"), strings.Join(segs[len(segs)-len(want):], "/")); ok {
			return true
		}
	}
	return false
}

// checkLink returns what is wrong with the destination of a link of doc,
// or "".
func (r *repository) checkLink(doc, dest string, own []string) string {
	dest = strings.TrimSuffix(strings.TrimPrefix(dest, "<"), ">")
	if webURL.MatchString(dest) && webURL.FindStringIndex(dest)[0] == 0 {
		return ""
	}
	if scheme.MatchString(dest) {
		return fmt.Sprintf("link %s: not a web link nor a relative path", dest)
	}
	target, anchor, _ := strings.Cut(dest, "#")
	target, _, _ = strings.Cut(target, "?")
	if t, err := url.PathUnescape(target); err == nil {
		target = t
	}
	switch {
	case target == "":
		if anchor != "" && !slices.Contains(own, anchor) {
			return fmt.Sprintf("link %s: %s has no heading #%s", dest, doc, anchor)
		}
		return ""
	default:
		dir := strings.HasSuffix(target, "/")
		if strings.HasPrefix(target, "/") { // from the root, on GitHub
			target = path.Clean(target[1:])
		} else {
			target = path.Join(path.Dir(doc), target)
		}
		if target == ".." || strings.HasPrefix(target, "../") {
			return fmt.Sprintf("link %s: outside the repository", dest)
		}
		if isDir, ok := r.paths[target]; !ok || dir && !isDir {
			return fmt.Sprintf("link %s: no such file or directory", dest)
		}
	}
	if isDir := r.paths[target]; anchor == "" || isDir || !strings.HasSuffix(target, ".md") {
		return ""
	}
	text, err := os.ReadFile(filepath.Join(r.root, filepath.FromSlash(target)))
	if err != nil {
		return fmt.Sprintf("link %s: %v", dest, err)
	}
	if !slices.Contains(anchors(string(text)), anchor) {
		return fmt.Sprintf("link %s: %s has no heading #%s", dest, target, anchor)
	}
	return ""
}

// block is a paragraph (lines up to a blank line or a fence) or a line of
// a fenced code block, starting at line.
type block struct {
	text   string
	line   int
	fenced bool
	lang   string // of a fenced block: its info string's first word
}

// blocks splits a Markdown document into paragraphs and fenced lines.
func blocks(text string) []block {
	var out []block
	var para []string
	start := 0
	flush := func() {
		if len(para) > 0 {
			out = append(out, block{text: strings.Join(para, "\n"), line: start})
			para = nil
		}
	}
	fence, lang := "", ""
	for i, line := range strings.Split(text, "\n") {
		trimmed := strings.TrimSpace(line)
		switch {
		case fence != "":
			if strings.HasPrefix(trimmed, fence) && strings.Trim(trimmed, fence[:1]) == "" {
				fence = ""
			} else {
				out = append(out, block{text: line, line: i + 1, fenced: true, lang: lang})
			}
		case strings.HasPrefix(trimmed, "```") || strings.HasPrefix(trimmed, "~~~"):
			flush()
			info := strings.TrimLeft(trimmed, trimmed[:1])
			fence = trimmed[:len(trimmed)-len(info)]
			lang = ""
			if words := strings.Fields(strings.Trim(info, "{}")); len(words) > 0 {
				lang = strings.ToLower(strings.TrimPrefix(words[0], "."))
			}
		case trimmed == "":
			flush()
		default:
			if len(para) == 0 {
				start = i + 1
			}
			para = append(para, line)
		}
	}
	flush()
	return out
}

// codeSpans returns the byte ranges of the code spans of a paragraph: a
// run of backticks up to the next run of as many.
func codeSpans(text string) [][2]int {
	var spans [][2]int
	for i := 0; i < len(text); {
		if text[i] != '`' {
			i++
			continue
		}
		n := len(text[i:]) - len(strings.TrimLeft(text[i:], "`"))
		closing := -1
		for j := i + n; j < len(text); {
			if text[j] != '`' {
				j++
				continue
			}
			m := len(text[j:]) - len(strings.TrimLeft(text[j:], "`"))
			if m == n {
				closing = j
				break
			}
			j += m
		}
		if closing < 0 {
			i += n // literal backticks
			continue
		}
		spans = append(spans, [2]int{i, closing + n})
		i = closing + n
	}
	return spans
}

var (
	atxHeading = regexp.MustCompile(`^ {0,3}#{1,6}(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$`)
	htmlAnchor = regexp.MustCompile(`<a\s[^>]*\b(?:id|name)="([^"]+)"`)
	inlineLink = regexp.MustCompile(`!?\[([^\]]*)\]\([^)]*\)`)
	htmlTag    = regexp.MustCompile(`<[^>]+>`)
)

// anchors returns the anchors GitHub gives a Markdown document: one per
// heading, by slug, and those of <a id> and <a name>.
func anchors(text string) []string {
	var out []string
	seen := map[string]int{}
	add := func(heading string) {
		base := slug(heading)
		s := base
		for {
			if _, ok := seen[s]; !ok {
				break
			}
			seen[base]++
			s = base + "-" + strconv.Itoa(seen[base])
		}
		seen[s] = 0
		out = append(out, s)
	}
	prev := ""
	for _, b := range blocks(text) {
		if b.fenced {
			prev = ""
			continue
		}
		for _, line := range strings.Split(b.text, "\n") {
			for _, m := range htmlAnchor.FindAllStringSubmatch(line, -1) {
				out = append(out, m[1])
			}
			switch trimmed := strings.TrimSpace(line); {
			case atxHeading.MatchString(line):
				add(atxHeading.FindStringSubmatch(line)[1])
				line = ""
			case prev != "" && trimmed != "" && (strings.Trim(trimmed, "=") == "" || strings.Trim(trimmed, "-") == "") &&
				!strings.HasPrefix(strings.TrimSpace(prev), "|"):
				add(prev) // a setext heading
				line = ""
			}
			prev = line
		}
		prev = ""
	}
	return out
}

// slug is GitHub's anchor for a heading: its text lower-cased, without
// punctuation or symbols but hyphens and underscores, each space a hyphen.
func slug(heading string) string {
	heading = inlineLink.ReplaceAllString(heading, "$1")
	heading = htmlTag.ReplaceAllString(heading, "")
	var b strings.Builder
	for _, c := range strings.ToLower(strings.TrimSpace(heading)) {
		switch {
		case c == ' ':
			b.WriteRune('-')
		case c == '-' || c == '_' || unicode.IsLetter(c) || unicode.IsNumber(c) || unicode.IsMark(c):
			b.WriteRune(c)
		}
	}
	return b.String()
}
