// Command schemas-check checks every Avro schema in contracts/schemas and
// saga/schemas against its previous versions with the embedded registry's
// own checker (devstack/registry/compat): BACKWARD_TRANSITIVE against every
// version and FORWARD against the latest, unless -level names one level
// instead. A change it fails is one that breaks a reader: the compacted
// state topics keep records of every version for good, which the new build
// reads, and during a rolling deploy instances of the build running now
// read what the new ones write.
//
// The previous versions are main's, from git: every version of the record
// in the first-parent history of the merge base of HEAD and main (the
// newer of main and origin/main, else of master and origin/master), or,
// when HEAD is on main, of HEAD if the schemas have changes not committed,
// else of HEAD's parent; the latest is the one at that
// commit. Without that history (a shallow clone, no main, git failing) it
// fails; only a HEAD that is the repository's first commit has nothing to
// compare with. A record is known by its full name and aliases, not by its
// file, and one main has that is gone fails unless removed.txt beside the
// schemas lists it. With -registry, or SCHEMA_REGISTRY_URL, they are the
// versions registered under each of the record's subjects (<topic>-<record
// full name>, one per topic that contracts/topics.go lists it under). A
// schema without a previous version passes. `make schemas-check` runs it.
package main

import (
	"bufio"
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hamba/avro/v2"
	"github.com/riferrei/srclient"

	"github.com/kafkasaga/kafkasaga/contracts"
	"github.com/kafkasaga/kafkasaga/contracts/serde"
	"github.com/kafkasaga/kafkasaga/devstack/registry/compat"
)

// policy names the default policy every record is checked under unless
// -level says otherwise, whatever a registry has configured, where latest
// names the version its forward half is checked against. The compacted
// state topics keep a record of every version for good, which the new
// build reads at every restore: BACKWARD_TRANSITIVE, against every version.
// A rolling deploy has instances of the build running now, the latest
// version, read records the new ones wrote (the group's assignor does not
// keep a partition with its instance: one a new instance wrote to can move
// to an old one, which restores it and goes on): FORWARD against the
// latest. Forward against every version (FULL_TRANSITIVE) would ask more
// than any reader needs, and leave no way to promote a field's type or to
// remove a field that once had no default. The registry can only enforce
// the backward half (provision sets BACKWARD_TRANSITIVE); this check
// enforces both.
func policy(latest string) string {
	return "BACKWARD_TRANSITIVE (every version) and FORWARD (" + latest + ")"
}

// removedList is the file, beside the schemas, that lists the full names
// of the records removed on purpose, one a line.
const removedList = "removed.txt"

type options struct {
	dir            string // where the .avsc files are: a list of directories, as in PATH
	registry       string // the registry's URL; empty compares with git
	base           string // git ref of the main branch; empty: the newer of main and origin/main, else of master and origin/master
	level          string // the compatibility level; empty: the default policy
	user, password string // the registry's basic auth
}

// transitive says whether every earlier version counts: under the default
// policy (backward against all of them) or a _TRANSITIVE level.
func (o options) transitive() bool {
	_, _, transitive := compat.Directions(o.level)
	return o.level == "" || transitive
}

func main() {
	var o options
	flag.StringVar(&o.dir, "dir", strings.Join([]string{"contracts/schemas", "saga/schemas"}, string(filepath.ListSeparator)),
		"the directories of the .avsc files, a list as in PATH")
	flag.StringVar(&o.registry, "registry", os.Getenv("SCHEMA_REGISTRY_URL"),
		"compare with the versions in this schema registry instead of git (default $SCHEMA_REGISTRY_URL)")
	flag.StringVar(&o.base, "base", "", "the git ref of the main branch (default the newer of main and origin/main, else of master and origin/master)")
	flag.StringVar(&o.level, "level", "", "check every record under this one compatibility level (default "+policy("the latest")+", whatever the registry's)")
	flag.Parse()
	o.user, o.password = os.Getenv("SCHEMA_REGISTRY_USER"), os.Getenv("SCHEMA_REGISTRY_PASSWORD")
	if err := run(o, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "schemas-check:", err)
		os.Exit(1)
	}
}

// schemaFile is one .avsc file.
type schemaFile struct {
	path     string
	name     string   // the record's full name
	subjects []string // its subjects, one per topic it is written to
	topics   []string // the topics that list it, by its full name or one of its aliases
	schema   avro.NamedSchema
}

// comparison is a schema and the previous versions it must be compatible
// with under level, or under the default policy.
type comparison struct {
	file     schemaFile
	subject  string // the subject compared with; empty when git stands for all of file.subjects
	level    string // empty: the default policy
	previous []compat.Version
	latest   []int                    // the default policy: the numbers of the previous versions it checks forward against
	latestIs string                   // and what they are ("main's latest")
	label    func(version int) string // names a previous version in a message
}

func run(o options, out io.Writer) error {
	if o.level != "" && !compat.ValidLevel(o.level) {
		return fmt.Errorf("-level %s: not a compatibility level", o.level)
	}
	dirs := filepath.SplitList(o.dir)
	var files []schemaFile
	for _, dir := range dirs {
		f, err := readSchemas(dir)
		if err != nil {
			return err
		}
		files = append(files, f...)
	}
	var cmps []comparison
	var gone []string
	var err error
	if o.registry != "" {
		cmps, err = fromRegistry(o, files, out)
	} else {
		cmps, gone, err = fromGit(o, dirs, files, out)
	}
	if err != nil {
		return err
	}
	failures := len(gone)
	for _, g := range gone {
		fmt.Fprintln(out, g)
	}
	for _, c := range cmps {
		for _, p := range problems(c) {
			fmt.Fprintln(out, describe(c, p))
			failures++
		}
	}
	if failures > 0 {
		return fmt.Errorf("%d incompatible change(s), each named above: give a new field a default and remove only fields "+
			"that have one in main's latest version (give it one first, deployed on its own), keep a field's type and a record's name, or add a new record instead "+
			"(docs/operations.md, \"Schema changes\")", failures)
	}
	if len(cmps) == 0 {
		fmt.Fprintln(out, "schemas-check: no previous versions, nothing compared")
		return nil
	}
	fmt.Fprintf(out, "schemas-check: %d compared, all compatible\n", len(cmps))
	return nil
}

// readSchemas parses every .avsc file of dir, each on its own, as the
// registry does.
func readSchemas(dir string) ([]schemaFile, error) {
	paths, err := filepath.Glob(filepath.Join(dir, "*.avsc"))
	if err != nil {
		return nil, err
	}
	if len(paths) == 0 {
		return nil, fmt.Errorf("no .avsc files in %s", dir)
	}
	topics := topicsByRecord()
	var files []schemaFile
	for _, path := range paths {
		text, err := os.ReadFile(path)
		if err != nil {
			return nil, err
		}
		s, err := compat.Parse(string(text))
		if err == nil {
			// A default the registry would refuse, or hamba read as
			// another number.
			err = compat.CheckDefaults(string(text))
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		named, ok := s.(avro.NamedSchema)
		if !ok {
			return nil, fmt.Errorf("%s: a %s schema, not a named record", path, s.Type())
		}
		f := schemaFile{path: path, name: named.FullName(), schema: named}
		for _, t := range topics[f.name] {
			f.subjects = append(f.subjects, serde.Subject(t, f.name))
		}
		for _, name := range append([]string{f.name}, named.Aliases()...) {
			f.topics = append(f.topics, topics[name]...)
		}
		slices.Sort(f.topics)
		f.topics = slices.Compact(f.topics)
		files = append(files, f)
	}
	return files, nil
}

// topicsByRecord names the topics of every record full name, as
// contracts.Topics lists them: `make schemas` registers the record under
// one subject in each (<topic>-<record full name>).
func topicsByRecord() map[string][]string {
	topics := make(map[string][]string)
	for _, t := range contracts.Topics() {
		for _, r := range t.Records {
			name := r.Schema().(avro.NamedSchema).FullName()
			topics[name] = append(topics[name], t.Name)
		}
	}
	return topics
}

// problems returns every problem of c's schema with each of its previous
// versions under c.level, or the default policy: backward with each,
// forward with the latest too. To the registry's checker it adds the record's
// name: the checker compares names without their namespace, while the
// serde finds the Go type of a record by the full name it was written
// under, among its types' full names and aliases. Where the name already
// keeps a reader from the data, the checker's verdict in that direction
// adds nothing.
func problems(c comparison) []compat.Problem {
	var found []compat.Problem
	for _, v := range c.previous {
		level := c.level
		if level == "" {
			level = "BACKWARD"
			if slices.Contains(c.latest, v.Number) {
				level = "FULL"
			}
		}
		backward, forward, _ := compat.Directions(level)
		old := v.Schema.(avro.NamedSchema)
		var named []compat.Problem
		if backward && !answersTo(c.file.schema, old.FullName()) {
			named = append(named, compat.Problem{Version: v.Number, Backward: true,
				Err: fmt.Errorf("written as %s before, which is neither its full name nor one of its aliases: list %q in its aliases",
					old.FullName(), old.FullName())})
		}
		if forward && !answersTo(old, c.file.name) {
			named = append(named, compat.Problem{Version: v.Number,
				Err: fmt.Errorf("renamed from %s, whose aliases do not list %s: an instance running that version finds no type "+
					"for a record written under the new name; keep the name, or add a new record instead", old.FullName(), c.file.name)})
		}
		found = append(found, named...)
		if backward || forward { // NONE takes any change
			for _, p := range compat.LogicalTypesChanged(c.file.schema, old) {
				p.Version, p.Backward = v.Number, backward
				found = append(found, p)
			}
		}
		for _, p := range compat.Check(level, c.file.schema, []compat.Version{v}) {
			if !slices.ContainsFunc(named, func(n compat.Problem) bool { return n.Backward == p.Backward }) {
				found = append(found, p)
			}
		}
	}
	return found
}

// answersTo reports whether s is a reader of records written as name: its
// full name or one of its aliases.
func answersTo(s avro.NamedSchema, name string) bool {
	return s.FullName() == name || slices.Contains(s.Aliases(), name)
}

// describe says which record and field break which rule, and how.
func describe(c comparison, p compat.Problem) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %s", c.file.path, c.file.name)
	switch {
	case c.subject != "":
		fmt.Fprintf(&b, " (subject %s)", c.subject)
	case len(c.file.subjects) == 1:
		fmt.Fprintf(&b, " (subject %s)", c.file.subjects[0])
	case len(c.file.subjects) > 1:
		fmt.Fprintf(&b, " (subjects %s)", strings.Join(c.file.subjects, ", "))
	}
	if p.Field != "" {
		fmt.Fprintf(&b, " field %s: %s", p.Field, p.Change)
	} else {
		fmt.Fprintf(&b, ": %v", p.Err)
	}
	switch {
	case strings.HasPrefix(p.Change, compat.LogicalTypeChanged):
		fmt.Fprintf(&b, "; the new schema and %s read each other's values of it as other values: add a field instead",
			c.label(p.Version))
	case p.Backward:
		fmt.Fprintf(&b, "; %s forbids it: the new schema cannot read data written with %s",
			cmp.Or(c.level, "BACKWARD_TRANSITIVE"), c.label(p.Version))
	default:
		fmt.Fprintf(&b, "; %s forbids it: %s cannot read data written with the new schema",
			cmp.Or(c.level, "FORWARD ("+c.latestIs+")"), c.label(p.Version))
	}
	return b.String()
}

// fromRegistry compares each subject of each schema with its versions in
// the registry: all of them under the default policy or a transitive
// level, else the latest.
func fromRegistry(o options, files []schemaFile, out io.Writer) ([]comparison, error) {
	url := strings.TrimSuffix(o.registry, "/")
	client := srclient.NewSchemaRegistryClient(url, srclient.WithClient(&http.Client{Timeout: 10 * time.Second}))
	if o.user != "" {
		client.SetCredentials(o.user, o.password)
	}
	const latestIs = "the registry's latest"
	fmt.Fprintf(out, "schemas-check: %s against the schema registry at %s, under %s\n",
		strings.Join(filepath.SplitList(o.dir), ", "), url, cmp.Or(o.level, policy(latestIs)))
	var cmps []comparison
	for _, f := range files {
		if len(f.topics) == 0 {
			return nil, fmt.Errorf("%s: %s: no topic in contracts/topics.go lists it, by its name or an alias, so it has no subject to compare with: "+
				"run make contracts, and list its Go type under the topics it is written to", f.path, f.name)
		}
		// Under its name, and under each of its aliases: the versions of
		// the record it was before a rename.
		var subjects []string
		for _, topic := range f.topics {
			for _, name := range append([]string{f.name}, f.schema.Aliases()...) {
				subjects = append(subjects, serde.Subject(topic, name))
			}
		}
		for _, subject := range subjects {
			previous, err := registered(client, subject, o.transitive())
			if err != nil {
				return nil, fmt.Errorf("the versions of %s: %w", subject, err)
			}
			if len(previous) == 0 {
				fmt.Fprintf(out, "%s: subject %s is new; nothing to compare with\n", f.path, subject)
				continue
			}
			latest := slices.MaxFunc(previous, func(a, b compat.Version) int { return a.Number - b.Number }).Number
			cmps = append(cmps, comparison{file: f, subject: subject, level: o.level, previous: previous,
				latest: []int{latest}, latestIs: latestIs,
				label: func(v int) string { return fmt.Sprintf("version %d of %s", v, subject) }})
		}
	}
	return cmps, nil
}

// registered returns the subject's latest version, or all of its versions,
// oldest first; none if the subject does not exist.
func registered(client *srclient.SchemaRegistryClient, subject string, all bool) ([]compat.Version, error) {
	latest, err := client.GetLatestSchema(subject)
	if se := (srclient.Error{}); errors.As(err, &se) && se.Code == 40401 {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	schemas := []*srclient.Schema{latest}
	if all {
		numbers, err := client.GetSchemaVersions(subject)
		if err != nil {
			return nil, err
		}
		schemas = schemas[:0]
		for _, n := range numbers {
			s, err := client.GetSchemaByVersion(subject, n)
			if err != nil {
				return nil, err
			}
			schemas = append(schemas, s)
		}
	}
	var versions []compat.Version
	for _, s := range schemas {
		parsed, err := compat.Parse(s.Schema())
		if err != nil {
			return nil, fmt.Errorf("version %d: %w", s.Version(), err)
		}
		if _, ok := parsed.(avro.NamedSchema); !ok {
			return nil, fmt.Errorf("version %d: a %s schema, not a named record", s.Version(), parsed.Type())
		}
		versions = append(versions, compat.Version{Number: s.Version(), Schema: parsed})
	}
	return versions, nil
}

// fromGit compares each schema with the versions of its record in main's
// history up to the base commit: all of them under the default policy
// (forward only with those in the base commit, the latest) or a transitive
// level, else those in the base commit. A record is known by its full name and
// aliases, wherever its file is. A record the base has, that no schema is
// now known as and that removed.txt does not list, is gone: gone says so.
func fromGit(o options, dirs []string, files []schemaFile, out io.Writer) (cmps []comparison, gone []string, err error) {
	commit, what, err := base(dirs[0], o.base, dirs)
	if err != nil {
		return nil, nil, err
	}
	if commit == "" {
		fmt.Fprintf(out, "schemas-check: nothing to compare with: %s\n", what)
		return nil, nil, nil
	}
	const latestIs = "main's latest"
	fmt.Fprintf(out, "schemas-check: %s against %s, under %s\n", strings.Join(dirs, ", "), what, cmp.Or(o.level, policy(latestIs)))
	versions, err := history(dirs, commit, out)
	if err != nil {
		return nil, nil, err
	}
	byName := make(map[string][]*version)
	for _, v := range versions {
		for _, name := range append([]string{v.schema.FullName()}, v.schema.Aliases()...) {
			byName[name] = append(byName[name], v)
		}
	}
	matched := make(map[*version]bool)
	transitive := o.transitive()
	for _, f := range files {
		var previous []compat.Version
		var labels, seen []string
		var latest []int
		for _, v := range related(f.schema, byName) {
			matched[v] = true
			if !transitive && !v.atBase {
				continue
			}
			n := slices.Index(seen, v.text) + 1 // a version the same as an older one is compared as that one
			if n == 0 {
				seen = append(seen, v.text)
				labels = append(labels, fmt.Sprintf("%s as of %.7s", v.path, v.commit))
				previous = append(previous, compat.Version{Number: len(labels), Schema: v.schema})
				n = len(labels)
			}
			if v.atBase {
				latest = append(latest, n)
			}
		}
		if len(previous) == 0 {
			fmt.Fprintf(out, "%s: new; nothing to compare with\n", f.path)
			continue
		}
		cmps = append(cmps, comparison{file: f, level: o.level, previous: previous, latest: latest, latestIs: latestIs,
			label: func(n int) string { return labels[n-1] }})
	}
	removed, err := removedRecords(dirs)
	if err != nil {
		return nil, nil, err
	}
	for _, v := range versions {
		if v.atBase && !matched[v] && !removed[v.schema.FullName()] {
			gone = append(gone, fmt.Sprintf("%s: %s, in %s, is gone: a record of it still in a topic (in flight, "+
				"or kept in a compacted state topic) could no longer be decoded, and a store skips it: "+
				"if it was renamed, list %q in the new schema's aliases; if it is retired, remove it only once no topic holds a record of it, "+
				"and list its full name in %s", v.path, v.schema.FullName(), what, v.schema.FullName(), filepath.Join(v.dir, removedList)))
		}
	}
	return cmps, gone, nil
}

// related returns the versions of the record s is, oldest first: those
// known by its full name or one of its aliases, and, for a record renamed
// more than once, those known by a name one of them was known by.
func related(s avro.NamedSchema, byName map[string][]*version) []*version {
	names := append([]string{s.FullName()}, s.Aliases()...)
	var found []*version
	for i := 0; i < len(names); i++ {
		for _, v := range byName[names[i]] {
			if slices.Contains(found, v) {
				continue
			}
			found = append(found, v)
			for _, name := range append([]string{v.schema.FullName()}, v.schema.Aliases()...) {
				if !slices.Contains(names, name) {
					names = append(names, name)
				}
			}
		}
	}
	slices.SortStableFunc(found, func(a, b *version) int { return b.age - a.age })
	return found
}

// removedRecords reads the removed.txt of each directory: the full names
// of the records removed on purpose, one a line, with # comments.
func removedRecords(dirs []string) (map[string]bool, error) {
	removed := make(map[string]bool)
	for _, dir := range dirs {
		text, err := os.ReadFile(filepath.Join(dir, removedList))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		for _, line := range strings.Split(string(text), "\n") {
			if line, _, _ = strings.Cut(line, "#"); strings.TrimSpace(line) != "" {
				removed[strings.TrimSpace(line)] = true
			}
		}
	}
	return removed, nil
}

// version is one schema file's text at some commit of main.
type version struct {
	path   string // relative to the repository's root
	dir    string // the directory of dirs it is in
	commit string // the oldest commit of main that has it
	age    int    // how many commits that one is older than the base: older versions are higher
	atBase bool   // the base commit has it
	schema avro.NamedSchema
	text   string // the schema as JSON, defaults and aliases too: equal for equal versions
}

// history returns every version of the .avsc files of dirs that main's
// first-parent history up to commit holds: what main's builds have
// written. It runs git log (the files each commit changed), ls-tree (those
// the base has) and cat-file (their texts) once each, however many commits
// there are: make test runs it every time.
func history(dirs []string, commit string, out io.Writer) ([]*version, error) {
	root, err := git(dirs[0], "rev-parse", "--show-toplevel")
	if err != nil {
		return nil, err
	}
	dirOf := make(map[string]string) // the directory of dirs, by its path from root
	var pathspecs []string
	for _, dir := range dirs {
		r, err := git(dir, "rev-parse", "--show-toplevel")
		if err != nil {
			return nil, err
		}
		if r != root {
			return nil, fmt.Errorf("%s and %s are in different git repositories: check them one at a time (-dir)", dirs[0], dir)
		}
		prefix, err := git(dir, "rev-parse", "--show-prefix")
		if err != nil {
			return nil, err
		}
		dirOf[path.Clean(cmp.Or(prefix, "."))] = dir
		pathspecs = append(pathspecs, cmp.Or(prefix, "."))
	}
	wanted := func(p string) bool {
		_, ok := dirOf[path.Dir(p)]
		return ok && strings.HasSuffix(p, ".avsc")
	}

	type file struct{ blob, path string }
	versions := make(map[file]*version)
	var order []file
	// -m --first-parent shows a merge's changes against its first parent
	// only, as --diff-merges=first-parent does, which git before 2.31 lacks.
	logged, err := git(root, append([]string{"-c", "core.quotePath=false", "log", "--first-parent", "-m",
		"--no-renames", "--root", "--raw", "--no-abbrev", "--format=commit %H", commit, "--"}, pathspecs...)...)
	if err != nil {
		return nil, err
	}
	var at string // the commit whose changes follow
	age := -1
	for _, line := range strings.Split(logged, "\n") {
		if c, ok := strings.CutPrefix(line, "commit "); ok {
			at, age = c, age+1
			continue
		}
		meta, p, ok := strings.Cut(line, "\t")
		fields := strings.Fields(meta)
		if !ok || !strings.HasPrefix(line, ":") || len(fields) < 4 || strings.Trim(fields[3], "0") == "" || !wanted(p) {
			continue // not a file, or one deleted
		}
		f := file{fields[3], p}
		if versions[f] == nil {
			versions[f] = &version{path: p, dir: dirOf[path.Dir(p)]}
			order = append(order, f)
		}
		versions[f].commit, versions[f].age = at, age // the log goes back in time
	}
	listed, err := git(root, append([]string{"-c", "core.quotePath=false", "ls-tree", "-r", "--full-tree", commit, "--"}, pathspecs...)...)
	if err != nil {
		return nil, err
	}
	for _, line := range strings.Split(listed, "\n") {
		meta, p, _ := strings.Cut(line, "\t")
		fields := strings.Fields(meta)
		if len(fields) < 3 || fields[1] != "blob" || !wanted(p) {
			continue
		}
		f := file{fields[2], p}
		if versions[f] == nil { // the log shows every file the base has; should it not, the base's are still compared with
			versions[f] = &version{path: p, dir: dirOf[path.Dir(p)], commit: commit}
			order = append(order, f)
		}
		versions[f].atBase = true
	}
	var blobs []string
	for _, f := range order {
		blobs = append(blobs, f.blob)
	}
	texts, err := catFiles(root, blobs)
	if err != nil {
		return nil, err
	}
	var all []*version
	for _, f := range order {
		v := versions[f]
		s, err := compat.Parse(texts[f.blob])
		if err == nil {
			if named, ok := s.(avro.NamedSchema); ok {
				v.schema = named
			} else {
				err = fmt.Errorf("a %s schema, not a named record", s.Type())
			}
		}
		if err != nil {
			// No registry takes a schema that does not parse, so no record
			// was written with it.
			fmt.Fprintf(out, "%s as of %.7s: not a schema to compare with: %v\n", v.path, v.commit, err)
			continue
		}
		text, err := json.Marshal(s)
		if err != nil {
			return nil, fmt.Errorf("%s as of %.7s: %w", v.path, v.commit, err)
		}
		v.text = string(text)
		all = append(all, v)
	}
	return all, nil
}

// catFiles returns the texts of the blobs, by id, from one git cat-file.
func catFiles(dir string, blobs []string) (map[string]string, error) {
	texts := make(map[string]string)
	if len(blobs) == 0 {
		return texts, nil
	}
	out, err := gitRun(dir, strings.Join(blobs, "\n")+"\n", "cat-file", "--batch")
	if err != nil {
		return nil, err
	}
	r := bufio.NewReader(bytes.NewReader(out))
	for range blobs {
		header, err := r.ReadString('\n')
		if err != nil {
			return nil, fmt.Errorf("git cat-file --batch: %w", err)
		}
		fields := strings.Fields(header) // <id> blob <size>
		if len(fields) != 3 {
			return nil, fmt.Errorf("git cat-file --batch: %q", strings.TrimSpace(header))
		}
		size, err := strconv.Atoi(fields[2])
		if err != nil {
			return nil, fmt.Errorf("git cat-file --batch: %q: %w", strings.TrimSpace(header), err)
		}
		text := make([]byte, size+1) // and a newline
		if _, err := io.ReadFull(r, text); err != nil {
			return nil, fmt.Errorf("git cat-file --batch: %w", err)
		}
		texts[fields[0]] = string(text[:size])
	}
	return texts, nil
}

// base returns the commit whose schemas are the previous versions, and
// says what it is: the merge base of HEAD and main (ref, else mainRef's),
// or, when HEAD is on main, HEAD itself if the schemas in dirs have
// changes not committed, else HEAD's parent. Only when HEAD is the
// repository's first commit is there nothing to compare with: commit is
// empty and what says so. Without a base (a shallow clone, no main, git
// failing) it fails, saying how to get one: to pass having compared
// nothing would let any change through.
func base(dir, ref string, dirs []string) (commit, what string, err error) {
	head, err := git(dir, "rev-parse", "--verify", "HEAD")
	if err != nil {
		return "", "", fmt.Errorf("%w: the check compares with main's history in git: run it in a clone of the repository git can read, "+
			"or compare with a registry (-registry)", err)
	}
	shallow, err := git(dir, "rev-parse", "--is-shallow-repository")
	if err != nil {
		return "", "", err
	}
	if shallow == "true" {
		return "", "", errors.New("a shallow clone: fetch main's history (actions/checkout's fetch-depth: 0, or git fetch --unshallow), " +
			"every version of which the check compares with")
	}
	parents, err := git(dir, "rev-list", "--parents", "-n", "1", "HEAD")
	if err != nil {
		return "", "", err
	}
	first := len(strings.Fields(parents)) == 1
	name, full := ref, ref+"^{commit}"
	if ref != "" {
		if _, err := git(dir, "rev-parse", "--verify", full); err != nil {
			return "", "", fmt.Errorf("-base %s: %w", ref, err)
		}
	} else if name, full, err = mainRef(dir); err != nil {
		return "", "", err
	}
	const fetch = "fetch main (git fetch origin main), or pass -base <commit>"
	switch {
	case name == "" && first:
		return "", "HEAD is the first commit", nil
	case name == "":
		return "", "", errors.New("no base to compare with: there is no main, origin/main, master or origin/master: " + fetch)
	}
	mb, err := git(dir, "merge-base", "HEAD", full)
	if err != nil {
		return "", "", fmt.Errorf("no base to compare with: HEAD has no common history with %s (%v): %s", name, err, fetch)
	}
	if mb != head {
		return mb, fmt.Sprintf("%s at the merge base %.7s", name, mb), nil
	}
	// HEAD is main's latest: with the schemas changed and not committed
	// (on main, or a branch made from it with no commit yet), that change
	// is compared with HEAD; else, as in CI's clone, HEAD's change with
	// its parent.
	status := []string{"status", "--porcelain", "--"}
	for _, d := range dirs { // git reads a relative pathspec from dir, not from here
		abs, err := filepath.Abs(d)
		if err != nil {
			return "", "", err
		}
		status = append(status, abs)
	}
	changed, err := git(dir, status...)
	switch {
	case err != nil:
		return "", "", err
	case changed != "":
		return head, fmt.Sprintf("HEAD %.7s (on %s; the schemas' changes not committed yet)", head, name), nil
	case first:
		return "", "HEAD is the first commit", nil
	}
	parent := strings.Fields(parents)[1]
	return parent, fmt.Sprintf("HEAD's parent %.7s (HEAD is on %s)", parent, name), nil
}

// mainRef returns the main branch, by name and full ref: the newer of main
// and origin/main (the descendant when one is an ancestor of the other,
// else the one committed last), else of master and origin/master; none
// when there is none of them.
func mainRef(dir string) (name, full string, err error) {
	for _, branch := range []string{"main", "master"} {
		var names, fulls []string
		for _, r := range [][2]string{{branch, "refs/heads/" + branch}, {"origin/" + branch, "refs/remotes/origin/" + branch}} {
			if _, err := git(dir, "rev-parse", "--verify", "--quiet", r[1]+"^{commit}"); err == nil {
				names, fulls = append(names, r[0]), append(fulls, r[1])
			}
		}
		switch len(names) {
		case 1:
			return names[0], fulls[0], nil
		case 2:
			if _, err := git(dir, "merge-base", "--is-ancestor", fulls[1], fulls[0]); err == nil {
				return names[0], fulls[0], nil
			}
			if _, err := git(dir, "merge-base", "--is-ancestor", fulls[0], fulls[1]); err == nil {
				return names[1], fulls[1], nil
			}
			// Diverged: the one committed last.
			dates, err := git(dir, "log", "--no-walk=unsorted", "--format=%ct", fulls[0], fulls[1])
			if err != nil {
				return "", "", err
			}
			d := append(strings.Fields(dates), "", "")
			at0, _ := strconv.ParseInt(d[0], 10, 64)
			at1, _ := strconv.ParseInt(d[1], 10, 64)
			if at0 >= at1 {
				return names[0], fulls[0], nil
			}
			return names[1], fulls[1], nil
		}
	}
	return "", "", nil
}

// git runs git in dir and returns its trimmed output.
func git(dir string, args ...string) (string, error) {
	out, err := gitRun(dir, "", args...)
	return strings.TrimSpace(string(out)), err
}

// gitRun runs git in dir with stdin as its input.
func gitRun(dir, stdin string, args ...string) ([]byte, error) {
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Stdin = strings.NewReader(stdin)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		if msg := strings.TrimSpace(stderr.String()); msg != "" {
			err = fmt.Errorf("%w: %s", err, msg)
		}
		return nil, fmt.Errorf("git %s: %w", strings.Join(args, " "), err)
	}
	return out, nil
}
