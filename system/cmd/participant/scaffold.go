package main

import (
	"bytes"
	"cmp"
	"context"
	"embed"
	"errors"
	"fmt"
	"go/ast"
	"go/format"
	"go/parser"
	"go/token"
	"go/types"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"text/template"

	"github.com/ettle/strcase"
	"golang.org/x/mod/module"

	"github.com/kafkasaga/kafkasaga/system"
)

//go:embed templates
var templates embed.FS

// newFiles are the files a participant gets: template, then the path it is
// written to (a template itself).
var newFiles = [][2]string{
	{"main.go.tmpl", "services/{{.name}}/main.go"},
	{"go.mod.tmpl", "services/{{.name}}/go.mod"},
	{"service.go.tmpl", "services/{{.name}}/service/service.go"},
	{"domain.go.tmpl", "services/{{.name}}/domain/{{.name}}.go"},
	{"domain_test.go.tmpl", "services/{{.name}}/domain/{{.name}}_test.go"},
	{"app.go.tmpl", "services/{{.name}}/app/app.go"},
	{"reserve.go.tmpl", "services/{{.name}}/app/command/reserve_{{.name}}.go"},
	{"release.go.tmpl", "services/{{.name}}/app/command/release_{{.name}}.go"},
	{"query.go.tmpl", "services/{{.name}}/app/query/{{.name}}.go"},
	{"repository.go.tmpl", "services/{{.name}}/adapters/{{.name}}_repository.go"},
	{"http.go.tmpl", "services/{{.name}}/ports/http.go"},
	{"messages.go.tmpl", "services/{{.name}}/ports/messages.go"},
	{"Reserve.avsc.tmpl", "contracts/schemas/Reserve{{.Name}}.avsc"},
	{"Reserved.avsc.tmpl", "contracts/schemas/{{.Name}}Reserved.avsc"},
	{"Refused.avsc.tmpl", "contracts/schemas/{{.Name}}Refused.avsc"},
	{"Release.avsc.tmpl", "contracts/schemas/Release{{.Name}}.avsc"},
	{"Released.avsc.tmpl", "contracts/schemas/{{.Name}}Released.avsc"},
	{"Record.avsc.tmpl", "contracts/schemas/{{.Name}}Record.avsc"},
}

// insertion is text inserted into an existing file before its anchor line.
type insertion struct {
	file, anchor, template string
	importService          bool // also import the participant's service package
}

var insertions = []insertion{
	{"contracts/topics.go", "// make participant adds topics above", "topics.tmpl", false},
	{"contracts/topics.go", "// make participant adds topic specs above", "specs.tmpl", false},
	{"contracts/interactions.go", "// make participant adds interactions above", "interactions.tmpl", false},
	{"system/system.go", "// make participant adds Config fields above", "config.tmpl", true},
	{"system/processes.go", "// make participant adds rows above", "row.tmpl", true},
	{"docker-compose.yml", "# make participant adds services above", "compose.tmpl", false},
}

// reservedPorts are taken by the embedded broker and registry, the Kafka UI
// and Kafka's controller in docker-compose.yml.
var reservedPorts = []int{8081, 8090, 9092, 9093}

var packageName = regexp.MustCompile(`^[a-z][a-z0-9]*$`)

// plan returns every file the participant name adds or changes, by path
// from root, with its new content, or why name cannot be one. It writes
// nothing.
func plan(root, name string) (map[string][]byte, error) {
	if !packageName.MatchString(name) || token.IsKeyword(name) || name == "main" {
		return nil, fmt.Errorf("name %q: want a Go package name of lowercase letters and digits, starting with a letter, "+
			"not a keyword or main (it names the package, the binary, the topics and the compose services)", name)
	}
	// init cannot name an import, and the go command gives a directory of
	// these names a meaning of its own (services/internal could not be
	// imported by package system; vendor and testdata are not packages).
	if slices.Contains([]string{"init", "internal", "vendor", "testdata"}, name) {
		return nil, fmt.Errorf("name %q: not init, internal, vendor or testdata, which Go treats as more than a name", name)
	}
	if types.Universe.Lookup(name) != nil {
		return nil, fmt.Errorf("name %q: a predeclared Go identifier (imported as %s into package system, it would hide the built-in there)", name, name)
	}
	if slices.Contains(system.Names(), name) {
		return nil, fmt.Errorf("name %q: system.Processes has a process of that name already", name)
	}
	// A name Windows reserves (aux, con) or a major version (v2) cannot
	// end the module path that go mod edit requires at v0.0.0.
	if err := module.Check(modulePath(name), "v0.0.0"); err != nil {
		return nil, fmt.Errorf("name %q: %w", name, err)
	}
	Name := strings.ToUpper(name[:1]) + name[1:]
	if _, taken := reflect.TypeFor[system.Config]().FieldByName(Name); taken {
		return nil, fmt.Errorf("name %q: system.Config has a field %s already", name, Name)
	}
	// The service package is imported as name into package system.
	if taken, err := declares(filepath.Join(root, "system"), name); err != nil || taken {
		return nil, cmp.Or(err, fmt.Errorf("name %q: package system declares %s already", name, name))
	}
	if _, err := os.Stat(filepath.Join(root, "services", name)); !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("name %q: services/%s exists already", name, name)
	}
	// make build puts every binary in bin/ by its package's name, and the
	// Dockerfile builds a SERVICE of such a name from its own package.
	for _, dir := range []string{"system/cmd", "devstack/cmd"} {
		if _, err := os.Stat(filepath.Join(root, dir, name)); !errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("name %q: %s/%s is a binary of that name already", name, dir, name)
		}
	}
	goVersion, err := workGoVersion(root)
	if err != nil {
		return nil, err
	}
	port := nextPort()
	data := map[string]any{"name": name, "Name": Name, "NAME": strings.ToUpper(name),
		"Port": port, "Port2": port + 10000, "GoVersion": goVersion}

	files := map[string][]byte{}
	for _, f := range newFiles {
		b, err := execute(template.New("path"), f[1], data)
		if err != nil {
			return nil, err
		}
		path := string(b)
		if _, err := os.Stat(filepath.Join(root, path)); !errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("name %q: %s exists already", name, path)
		}
		text, err := executeFile(f[0], data)
		if err != nil {
			return nil, err
		}
		if strings.HasSuffix(path, ".go") {
			if text, err = format.Source(text); err != nil {
				return nil, fmt.Errorf("template %s: %w", f[0], err)
			}
		}
		// avrogen names a record's Go type with golint's initialisms
		// (strcase): the schema ReserveApi would be the type ReserveAPI,
		// and the templates' ReserveApi would name nothing.
		if rec, ok := strings.CutSuffix(strings.TrimPrefix(path, "contracts/schemas/"), ".avsc"); ok {
			if typ := strcase.NewCaser(true, nil, nil).ToPascal(rec); typ != rec {
				return nil, fmt.Errorf("name %q: avrogen would name the record %s's Go type %s (a Go initialism): choose another name", name, rec, typ)
			}
		}
		files[path] = text
	}
	if err := declaredOnce(files); err != nil {
		return nil, fmt.Errorf("name %q: %w", name, err)
	}
	for _, in := range insertions {
		text, ok := files[in.file]
		if !ok {
			if text, err = os.ReadFile(filepath.Join(root, in.file)); err != nil {
				return nil, err
			}
		}
		add, err := executeFile(in.template, data)
		if err != nil {
			return nil, err
		}
		if in.file == "docker-compose.yml" && composeAnchor(name).Match(text) {
			return nil, fmt.Errorf("name %q: docker-compose.yml has an anchor &%s or &%s-env already, which the new services' would shadow", name, name, name)
		}
		if text, err = insertBefore(text, in.anchor, add); err != nil {
			return nil, fmt.Errorf("%s: %w", in.file, err)
		}
		if in.importService {
			if text, err = addImport(text, name, "github.com/kafkasaga/kafkasaga/services/"+name+"/service"); err != nil {
				return nil, fmt.Errorf("%s: %w", in.file, err)
			}
		}
		if strings.HasSuffix(in.file, ".go") {
			if text, err = format.Source(text); err != nil {
				return nil, fmt.Errorf("%s: %w", in.file, err)
			}
		}
		files[in.file] = text
	}
	return files, nil
}

// composeAnchor matches the YAML anchors the new services take in
// docker-compose.yml: &<name> and &<name>-env.
func composeAnchor(name string) *regexp.Regexp {
	return regexp.MustCompile(`&` + regexp.QuoteMeta(name) + `(-env)?\b[^-]`)
}

// declaredOnce reports a top-level name that the new Go files of one
// directory declare twice: the name's own type beside one the templates
// declare (NAME=status in a domain that has its Status).
func declaredOnce(files map[string][]byte) error {
	seen := map[string]string{} // "dir name": the file that declares it
	for path, text := range files {
		if !strings.HasSuffix(path, ".go") {
			continue
		}
		f, err := parser.ParseFile(token.NewFileSet(), path, text, parser.SkipObjectResolution)
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		dir := filepath.Dir(path)
		for _, decl := range f.Decls {
			var names []string
			switch d := decl.(type) {
			case *ast.GenDecl:
				for _, spec := range d.Specs {
					switch sp := spec.(type) {
					case *ast.TypeSpec:
						names = append(names, sp.Name.Name)
					case *ast.ValueSpec:
						for _, n := range sp.Names {
							names = append(names, n.Name)
						}
					}
				}
			case *ast.FuncDecl:
				if d.Recv == nil && d.Name.Name != "init" {
					names = append(names, d.Name.Name)
				}
			}
			for _, n := range names {
				if n == "_" {
					continue
				}
				if other, ok := seen[dir+" "+n]; ok {
					where := other + " and " + path
					if other == path {
						where = "both in " + path
					}
					return fmt.Errorf("%s declares %s twice (%s): the name's type would be the template's %s; choose another name", dir, n, where, n)
				}
				seen[dir+" "+n] = path
			}
		}
	}
	return nil
}

// run writes what plan returns, then runs the go commands that register
// the module and generate the contracts' types. Should any of it fail, or
// ctx end (an interrupt), it puts every file back as it was: half a
// participant leaves the workspace broken, this command's own build
// included.
func run(ctx context.Context, root, name string, out io.Writer) (err error) {
	files, err := plan(root, name)
	if err != nil {
		return err
	}
	paths := slices.Sorted(maps.Keys(files))
	undo, err := snapshot(root, slices.Concat(paths, touchedByGo))
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			// plan refused a name whose services/<name> exists: it is this run's.
			if uerr := errors.Join(undo(), os.RemoveAll(filepath.Join(root, "services", name))); uerr != nil {
				err = fmt.Errorf("%w\nand putting the files back failed (git status shows what is left): %w", err, uerr)
			} else {
				err = fmt.Errorf("%w\n(every file is as it was before)", err)
			}
		}
	}()
	for _, p := range paths {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(full, files[p], 0o644); err != nil {
			return err
		}
		fmt.Fprintln(out, "wrote", p)
	}
	mod := modulePath(name)
	steps := []struct {
		dir    string
		gowork bool
		args   []string
	}{
		{".", true, []string{"work", "use", "./services/" + name}},
		{"system", true, []string{"mod", "edit", "-require=" + mod + "@v0.0.0", "-replace=" + mod + "=../services/" + name}},
		// deploy imports system: without GOWORK it needs the replace too.
		{"deploy", true, []string{"mod", "edit", "-require=" + mod + "@v0.0.0", "-replace=" + mod + "=../services/" + name}},
		// Each module builds on its own too (GOWORK=off), from its go.mod.
		{"services/" + name, false, []string{"mod", "tidy"}},
		{"contracts", true, []string{"generate", "./..."}},
		// As go mod tidy leaves them (make vet checks): deploy needs the
		// new module only through system.
		{"system", false, []string{"mod", "tidy"}},
		{"deploy", false, []string{"mod", "tidy"}},
	}
	for _, s := range steps {
		cmd := exec.CommandContext(ctx, "go", s.args...)
		cmd.Dir = filepath.Join(root, s.dir)
		cmd.Env = os.Environ()
		if !s.gowork {
			cmd.Env = append(cmd.Env, "GOWORK=off")
		}
		if b, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("in %s, go %s: %w\n%s", s.dir, strings.Join(s.args, " "), cmp.Or(ctx.Err(), err), b)
		}
		fmt.Fprintf(out, "ran go %s in %s\n", strings.Join(s.args, " "), s.dir)
	}
	fmt.Fprintf(out, "services/%s is a participant of no saga yet: docs/adding-a-saga-step.md adds its step\n", name)
	return nil
}

// modulePath is the module path of the participant name.
func modulePath(name string) string { return "github.com/kafkasaga/kafkasaga/services/" + name }

// touchedByGo are the files run's go commands may change, besides the
// new module's.
var touchedByGo = []string{"go.work", "go.work.sum", "system/go.mod", "system/go.sum", "deploy/go.mod", "deploy/go.sum",
	"contracts/types_gen.go", "contracts/interactions_gen.go"}

// snapshot reads the files of paths under root and returns what writes
// them back, and removes those that did not exist.
func snapshot(root string, paths []string) (undo func() error, err error) {
	was := map[string][]byte{}
	for _, p := range paths {
		b, err := os.ReadFile(filepath.Join(root, p))
		switch {
		case err == nil:
			was[p] = b
		case !errors.Is(err, os.ErrNotExist):
			return nil, err
		}
	}
	return func() error {
		var errs []error
		for _, p := range paths {
			full := filepath.Join(root, p)
			if b, ok := was[p]; ok {
				errs = append(errs, os.WriteFile(full, b, 0o644))
			} else if err := os.Remove(full); err != nil && !errors.Is(err, os.ErrNotExist) {
				errs = append(errs, err)
			}
		}
		return errors.Join(errs...)
	}, nil
}

// nextPort is the port after the highest of system.Processes, skipping the
// ones others use.
func nextPort() int {
	port := 0
	for _, p := range system.Processes {
		port = max(port, p.Port)
	}
	for port++; slices.Contains(reservedPorts, port); port++ {
	}
	return port
}

// workGoVersion is go.work's go directive, which the new go.mod repeats.
func workGoVersion(root string) (string, error) {
	text, err := os.ReadFile(filepath.Join(root, "go.work"))
	if err != nil {
		return "", fmt.Errorf("%s is not the repository's root: %w", root, err)
	}
	m := regexp.MustCompile(`(?m)^go (\S+)$`).FindSubmatch(text)
	if m == nil {
		return "", errors.New("go.work has no go directive")
	}
	return string(m[1]), nil
}

// declares reports whether the package in dir, tests aside, declares name
// at its top level.
func declares(dir, name string) (bool, error) {
	paths, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil {
		return false, err
	}
	for _, p := range paths {
		if strings.HasSuffix(p, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(token.NewFileSet(), p, nil, parser.SkipObjectResolution)
		if err != nil {
			return false, err
		}
		for _, d := range f.Decls {
			switch d := d.(type) {
			case *ast.FuncDecl:
				if d.Recv == nil && d.Name.Name == name {
					return true, nil
				}
			case *ast.GenDecl:
				for _, spec := range d.Specs {
					switch spec := spec.(type) {
					case *ast.TypeSpec:
						if spec.Name.Name == name {
							return true, nil
						}
					case *ast.ValueSpec:
						if slices.ContainsFunc(spec.Names, func(n *ast.Ident) bool { return n.Name == name }) {
							return true, nil
						}
					}
				}
			}
		}
	}
	return false, nil
}

// insertBefore inserts add before the one line that holds anchor.
func insertBefore(text []byte, anchor string, add []byte) ([]byte, error) {
	if n := bytes.Count(text, []byte(anchor)); n != 1 {
		return nil, fmt.Errorf("got %d lines with %q, want one: make participant inserts before it", n, anchor)
	}
	i := bytes.Index(text, []byte(anchor))
	i = bytes.LastIndexByte(text[:i], '\n') + 1
	return slices.Concat(text[:i], add, text[i:]), nil
}

// addImport adds `name "path"` to the import block of a Go file, refusing
// a name the file imports already.
func addImport(src []byte, name, path string) ([]byte, error) {
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, "", src, parser.ImportsOnly)
	if err != nil {
		return nil, err
	}
	for _, im := range f.Imports {
		p, _ := strconv.Unquote(im.Path.Value)
		if (im.Name != nil && im.Name.Name == name) || (im.Name == nil && filepath.Base(p) == name) {
			return nil, fmt.Errorf("name %q: the file imports %s as %s already", name, p, name)
		}
	}
	var block *ast.GenDecl
	if len(f.Decls) > 0 {
		block, _ = f.Decls[0].(*ast.GenDecl)
	}
	if block == nil || block.Tok != token.IMPORT || !block.Rparen.IsValid() {
		return nil, errors.New("no import block")
	}
	end := fset.Position(block.Rparen).Offset
	return slices.Concat(src[:end], []byte(fmt.Sprintf("\t%s %q\n", name, path)), src[end:]), nil
}

func executeFile(name string, data any) ([]byte, error) {
	text, err := templates.ReadFile("templates/" + name)
	if err != nil {
		return nil, err
	}
	return execute(template.New(name), string(text), data)
}

func execute(t *template.Template, text string, data any) ([]byte, error) {
	t, err := t.Option("missingkey=error").Parse(text)
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	if err := t.Execute(&b, data); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}
