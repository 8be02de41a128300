// Command schemas-check checks every Avro schema in contracts/schemas and
// saga/schemas against its previous version, under its subject's
// compatibility level, with the embedded registry's own checker
// (devstack/registry/compat). A change it fails is one a registry refuses at
// `make schemas`, or one that breaks the consumers still reading the
// previous version.
//
// The previous version is main's, from git: the merge base of HEAD and main
// (else origin/main), or HEAD's parent when HEAD is on main. With -registry,
// or SCHEMA_REGISTRY_URL, it is the latest version registered under each of
// the record's subjects (<topic>-<record full name>, one per topic that
// contracts/topics.go lists it under), checked under that subject's level.
// A schema without a previous version passes. `make schemas-check` runs it.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/hamba/avro/v2"
	"github.com/riferrei/srclient"

	"github.com/kafkasaga/kafkasaga/contracts"
	"github.com/kafkasaga/kafkasaga/contracts/serde"
	"github.com/kafkasaga/kafkasaga/devstack/registry/compat"
)

type options struct {
	dir            string // where the .avsc files are: a list of directories, as in PATH
	registry       string // the registry's URL; empty compares with git
	base           string // git ref of the main branch; empty tries main, then origin/main
	level          string // overrides the subject's level; empty: the registry's, or compat.Default with git
	user, password string // the registry's basic auth
}

func main() {
	var o options
	flag.StringVar(&o.dir, "dir", strings.Join([]string{"contracts/schemas", "saga/schemas"}, string(filepath.ListSeparator)),
		"the directories of the .avsc files, a list as in PATH")
	flag.StringVar(&o.registry, "registry", os.Getenv("SCHEMA_REGISTRY_URL"),
		"compare with the latest versions in this schema registry instead of git (default $SCHEMA_REGISTRY_URL)")
	flag.StringVar(&o.base, "base", "", "the git ref of the main branch (default main, else origin/main)")
	flag.StringVar(&o.level, "level", "", "the compatibility level (default each subject's in the registry; "+compat.Default+" with git)")
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
	schema   avro.Schema
}

// comparison is a schema and the previous versions it must be compatible
// with under level.
type comparison struct {
	file     schemaFile
	subject  string // the subject compared with; empty when git stands for all of file.subjects
	level    string
	previous []compat.Version
	label    func(version int) string // names a previous version in a message
}

func run(o options, out io.Writer) error {
	if o.level != "" && !compat.ValidLevel(o.level) {
		return fmt.Errorf("-level %s: not a compatibility level", o.level)
	}
	var cmps []comparison
	for _, dir := range filepath.SplitList(o.dir) {
		o := o
		o.dir = dir
		files, err := readSchemas(dir)
		if err != nil {
			return err
		}
		var c []comparison
		if o.registry != "" {
			c, err = fromRegistry(o, files, out)
		} else {
			c, err = fromGit(o, files, out)
		}
		if err != nil {
			return err
		}
		cmps = append(cmps, c...)
	}
	var problems int
	for _, c := range cmps {
		for _, p := range compat.Check(c.level, c.file.schema, c.previous) {
			fmt.Fprintln(out, describe(c, p))
			problems++
		}
	}
	if problems > 0 {
		return fmt.Errorf("%d incompatible change(s): give a new field a default, keep the old type, "+
			"or write the record under a new name", problems)
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
	subjects := subjectsByRecord()
	var files []schemaFile
	for _, path := range paths {
		text, err := os.ReadFile(path)
		if err != nil {
			return nil, err
		}
		s, err := compat.Parse(string(text))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		named, ok := s.(avro.NamedSchema)
		if !ok {
			return nil, fmt.Errorf("%s: a %s schema, not a named record", path, s.Type())
		}
		files = append(files, schemaFile{path: path, name: named.FullName(), subjects: subjects[named.FullName()], schema: s})
	}
	return files, nil
}

// subjectsByRecord names the subjects of every record full name, as
// `make schemas` registers them: one per topic contracts.Topics lists the
// record under.
func subjectsByRecord() map[string][]string {
	subjects := make(map[string][]string)
	for _, t := range contracts.Topics() {
		for _, r := range t.Records {
			name := r.Schema().(avro.NamedSchema).FullName()
			subjects[name] = append(subjects[name], serde.Subject(t.Name, name))
		}
	}
	return subjects
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
	if p.Backward {
		fmt.Fprintf(&b, "; %s forbids it: the new schema cannot read data written with %s", c.level, c.label(p.Version))
	} else {
		fmt.Fprintf(&b, "; %s forbids it: %s cannot read data written with the new schema", c.level, c.label(p.Version))
	}
	return b.String()
}

// fromRegistry compares each subject of each schema with its latest
// version in the registry, or all of its versions under a transitive level.
func fromRegistry(o options, files []schemaFile, out io.Writer) ([]comparison, error) {
	url := strings.TrimSuffix(o.registry, "/")
	client := srclient.NewSchemaRegistryClient(url, srclient.WithClient(&http.Client{Timeout: 10 * time.Second}))
	if o.user != "" {
		client.SetCredentials(o.user, o.password)
	}
	fmt.Fprintf(out, "schemas-check: %s against the schema registry at %s\n", o.dir, url)
	var cmps []comparison
	for _, f := range files {
		if len(f.subjects) == 0 {
			fmt.Fprintf(out, "%s: %s: no topic in contracts/topics.go lists it, so it has no subject; nothing to compare with\n", f.path, f.name)
			continue
		}
		for _, subject := range f.subjects {
			level := o.level
			if level == "" {
				l, err := client.GetCompatibilityLevel(subject, true)
				if err != nil {
					return nil, fmt.Errorf("the compatibility level of %s: %w", subject, err)
				}
				level = string(*l)
			}
			previous, err := registered(client, subject, strings.HasSuffix(level, "_TRANSITIVE"))
			if err != nil {
				return nil, fmt.Errorf("the versions of %s: %w", subject, err)
			}
			if len(previous) == 0 {
				fmt.Fprintf(out, "%s: subject %s is new; nothing to compare with\n", f.path, subject)
				continue
			}
			cmps = append(cmps, comparison{file: f, subject: subject, level: level, previous: previous,
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
		versions = append(versions, compat.Version{Number: s.Version(), Schema: parsed})
	}
	return versions, nil
}

// fromGit compares each schema with its version in main's history (base);
// git knows no levels, so all are checked under one (compat.Default unless
// -level says otherwise).
func fromGit(o options, files []schemaFile, out io.Writer) ([]comparison, error) {
	level := o.level
	if level == "" {
		level = compat.Default
	}
	commit, what, err := base(o.dir, o.base)
	if err != nil {
		return nil, err
	}
	if commit == "" {
		fmt.Fprintf(out, "schemas-check: nothing to compare with: %s\n", what)
		return nil, nil
	}
	fmt.Fprintf(out, "schemas-check: %s against %s, under %s\n", o.dir, what, level)
	listed, err := git(o.dir, "ls-tree", "--name-only", commit, "--", ".")
	if err != nil {
		return nil, err
	}
	known := strings.Split(listed, "\n")
	var cmps []comparison
	for _, f := range files {
		name := filepath.Base(f.path)
		if !slices.Contains(known, name) {
			fmt.Fprintf(out, "%s: new; nothing to compare with\n", f.path)
			continue
		}
		text, err := git(o.dir, "show", commit+":./"+name)
		if err != nil {
			return nil, err
		}
		s, err := compat.Parse(text)
		if err != nil {
			return nil, fmt.Errorf("%s as of %s: %w", f.path, what, err)
		}
		cmps = append(cmps, comparison{file: f, level: level, previous: []compat.Version{{Number: 1, Schema: s}},
			label: func(int) string { return "the version in " + what }})
	}
	return cmps, nil
}

// base returns the commit whose schemas are the previous versions, and
// says what it is: the merge base of HEAD and main (ref), or HEAD's parent
// when HEAD is on main or has no merge base with it (a shallow clone).
// Without a commit to compare with, commit is empty and what says why.
func base(dir, ref string) (commit, what string, err error) {
	head, err := git(dir, "rev-parse", "--verify", "HEAD")
	if err != nil {
		return "", fmt.Sprintf("no git commit (%v)", err), nil
	}
	refs := []string{"main", "origin/main"}
	if ref != "" {
		if _, err := git(dir, "rev-parse", "--verify", ref+"^{commit}"); err != nil {
			return "", "", fmt.Errorf("-base %s: %w", ref, err)
		}
		refs = []string{ref}
	}
	why := "there is no " + strings.Join(refs, " or ")
	for _, r := range refs {
		if _, err := git(dir, "rev-parse", "--verify", r+"^{commit}"); err != nil {
			continue
		}
		mb, err := git(dir, "merge-base", "HEAD", r)
		if err != nil {
			why = "HEAD has no merge base with " + r
			break
		}
		if mb != head {
			return mb, fmt.Sprintf("%s at the merge base %.7s", r, mb), nil
		}
		why = "HEAD is on " + r
		break
	}
	parent, err := git(dir, "rev-parse", "--verify", "HEAD^")
	if err != nil {
		return "", why + ", and HEAD has no parent here (a shallow clone, or the first commit)", nil
	}
	return parent, fmt.Sprintf("HEAD's parent %.7s (%s)", parent, why), nil
}

// git runs git in dir and returns its trimmed output.
func git(dir string, args ...string) (string, error) {
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		if msg := strings.TrimSpace(stderr.String()); msg != "" {
			err = fmt.Errorf("%w: %s", err, msg)
		}
		return "", fmt.Errorf("git %s: %w", strings.Join(args, " "), err)
	}
	return strings.TrimSpace(string(out)), nil
}
