package main

import (
	"cmp"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/riferrei/srclient"

	"github.com/kafkasaga/kafkasaga/contracts"
	"github.com/kafkasaga/kafkasaga/contracts/serde"
	"github.com/kafkasaga/kafkasaga/devstack"
)

// orderCreated is contracts' OrderCreated with the given fields, so that it
// has the subject `make schemas` gives it.
func orderCreated(fields ...string) string {
	return `{"type": "record", "namespace": "kafkasaga.order", "name": "OrderCreated", "fields": [` + strings.Join(fields, ", ") + `]}`
}

const (
	orderID            = `{"name": "orderId", "type": "string"}`
	total              = `{"name": "orderTotal", "type": "long"}`
	totalDouble        = `{"name": "orderTotal", "type": "double"}`
	totalString        = `{"name": "orderTotal", "type": "string"}`
	totalStringDefault = `{"name": "orderTotal", "type": "string", "default": ""}`
	currency           = `{"name": "currency", "type": "string"}`
	currencyDefault    = `{"name": "currency", "type": "string", "default": "EUR"}`
)

var (
	subject = serde.Subject(contracts.TopicOrderEvents, "kafkasaga.order.OrderCreated")
	before  = orderCreated(orderID, total)
)

// changes are the changes of OrderCreated both modes check, from before.
// An empty want means the change passes; otherwise the check fails with a
// line that contains want.
var changes = []struct {
	name   string
	level  string // -level; empty: the check's default policy
	fields []string
	want   string
}{
	{"a field removed without a default", "FULL", []string{orderID},
		"kafkasaga.order.OrderCreated (subject " + subject + ") field orderTotal: removed without a default; FULL forbids it: "},
	// An instance of the previous build, which still runs during a rolling
	// deploy, needs the field to read what the new one writes.
	{"a field removed", "", []string{orderID},
		"field orderTotal: removed without a default; FORWARD ("},
	// BACKWARD only asks the new schema to read old data, which it does by
	// skipping the field.
	{"a field removed, under BACKWARD", "BACKWARD", []string{orderID}, ""},
	// The new schema reads a long as a double, but the previous build cannot
	// read a double as a long.
	{"a type promoted", "", []string{orderID, totalDouble},
		"field orderTotal: type changed from long to double; FORWARD ("},
	{"a type changed", "", []string{orderID, totalString},
		"kafkasaga.order.OrderCreated (subject " + subject + ") field orderTotal: type changed from long to string; BACKWARD_TRANSITIVE forbids it: the new schema cannot read data written with "},
	{"a field added with a default", "", []string{orderID, total, currencyDefault}, ""},
	{"a field added without a default", "", []string{orderID, total, currency},
		"field currency: added without a default; BACKWARD_TRANSITIVE forbids it: "},
}

// check runs the command on dir and returns its output and error.
func check(t *testing.T, o options) (string, error) {
	t.Helper()
	var out strings.Builder
	err := run(o, &out)
	t.Logf("output:\n%s", out.String())
	return out.String(), err
}

// wantVerdict fails the test unless out and err say what want says.
func wantVerdict(t *testing.T, out string, err error, want string) {
	t.Helper()
	switch {
	case want == "" && err != nil:
		t.Errorf("got %v, want the change to pass", err)
	case want != "" && err == nil:
		t.Errorf("the change passed, want it refused with %q", want)
	case want != "" && !strings.Contains(out, want):
		t.Errorf("got output %q, want a line with %q", out, want)
	}
}

func TestGitMode(t *testing.T) {
	for _, tc := range changes {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			repo := newRepo(t)
			gitT(t, repo, "switch", "-q", "-c", "change")
			writeSchema(t, repo, "OrderCreated.avsc", orderCreated(tc.fields...))
			commit(t, repo, "change OrderCreated")
			out, err := check(t, options{dir: filepath.Join(repo, "schemas"), level: tc.level})
			wantVerdict(t, out, err, tc.want)
			mergeBase := gitT(t, repo, "rev-parse", "--short=7", "main")
			if !strings.Contains(out, "main at the merge base "+mergeBase) {
				t.Errorf("the output does not say it compared with main's %s", mergeBase)
			}
		})
	}
}

// The previous version is the merge base's, not main's latest: main has
// gone on to a version the branch's change is incompatible with.
func TestGitModeComparesWithTheMergeBase(t *testing.T) {
	repo := newRepo(t)
	mergeBase := gitT(t, repo, "rev-parse", "--short=7", "main")
	gitT(t, repo, "switch", "-q", "-c", "change")
	writeSchema(t, repo, "OrderCreated.avsc", orderCreated(orderID, total, currencyDefault))
	commit(t, repo, "add currency")
	gitT(t, repo, "switch", "-q", "main")
	writeSchema(t, repo, "OrderCreated.avsc", orderCreated(orderID, totalString))
	commit(t, repo, "main goes on")
	gitT(t, repo, "switch", "-q", "change")

	out, err := check(t, options{dir: filepath.Join(repo, "schemas")})
	if err != nil {
		t.Fatalf("got %v, want the branch compared with the merge base %s, with which it is compatible", err, mergeBase)
	}
	if !strings.Contains(out, "merge base "+mergeBase) {
		t.Errorf("the output does not name the merge base %s", mergeBase)
	}
}

// On main, as in CI's clone, the previous version is HEAD's parent's,
// whether main is a local branch or only origin/main.
func TestGitModeOnMain(t *testing.T) {
	repo := newRepo(t)
	writeSchema(t, repo, "OrderCreated.avsc", orderCreated(orderID, totalString))
	commit(t, repo, "change the type of orderTotal")
	parent := gitT(t, repo, "rev-parse", "--short=7", "HEAD^")
	gitT(t, repo, "switch", "-q", "-c", "ci")

	for _, c := range []struct{ name, clone, ref string }{
		{"main", "main", "main"},
		{"origin/main only", "ci", "origin/main"}, // a clone of another branch has no local main
	} {
		t.Run(c.name, func(t *testing.T) {
			clone := filepath.Join(t.TempDir(), "clone")
			gitT(t, "", "clone", "-q", "-b", c.clone, repo, clone)
			out, err := check(t, options{dir: filepath.Join(clone, "schemas")})
			wantVerdict(t, out, err, "field orderTotal: type changed from long to string")
			if want := "HEAD's parent " + parent + " (HEAD is on " + c.ref + ")"; !strings.Contains(out, want) {
				t.Errorf("the output does not say %q", want)
			}
		})
	}
}

// On main, or on a branch made from it with no commit yet, a change not
// committed is compared with HEAD, main's latest, not with HEAD's parent:
// a change to what HEAD added would otherwise pass.
func TestGitModeComparesAChangeNotCommittedWithHEAD(t *testing.T) {
	for _, branch := range []string{"main", "feature"} {
		t.Run(branch, func(t *testing.T) {
			repo := newRepo(t)
			writeSchema(t, repo, "OrderCreated.avsc", orderCreated(orderID, total, currencyDefault))
			commit(t, repo, "add currency")
			if branch != "main" {
				gitT(t, repo, "switch", "-q", "-c", branch)
			}
			head := gitT(t, repo, "rev-parse", "--short=7", "HEAD")
			// Added with a default, as HEAD's parent would see it.
			writeSchema(t, repo, "OrderCreated.avsc", orderCreated(orderID, total, `{"name": "currency", "type": "long", "default": 0}`))
			// Run from the repository, as make does, with the directory
			// relative to it.
			t.Chdir(repo)
			out, err := check(t, options{dir: "schemas"})
			wantVerdict(t, out, err, "field currency: type changed from string to long")
			if want := "HEAD " + head; !strings.Contains(out, want) {
				t.Errorf("the output does not say it compared with %q", want)
			}
		})
	}
}

// A default the registry refuses, or one hamba would read as another
// number, fails the check as it would fail the schema's registration,
// whatever it is compared with.
func TestGitModeChecksTheDefaults(t *testing.T) {
	repo := newRepo(t)
	writeSchema(t, repo, "OrderCreated.avsc", orderCreated(orderID, total, `{"name": "n", "type": "long", "default": 9223372036854775807}`))
	out, err := check(t, options{dir: filepath.Join(repo, "schemas")})
	if err == nil || !strings.Contains(err.Error(), "OrderCreated.avsc") || !strings.Contains(err.Error(), "field n: default") {
		t.Errorf("got %v (output %q), want the schema's default of n refused", err, out)
	}
}

// A change of logical type is one of meaning: Avro reads a long as a
// timestamp and millis as micros, so the registry lets it through, and
// each build then reads the other's values as other values. The check
// refuses it, wherever the field is.
func TestGitModeRefusesAChangeOfLogicalType(t *testing.T) {
	at := func(logical string) string {
		return `{"name": "at", "type": ["null", {"type": "array", "items": {"type": "record", "name": "Step", "fields": [
			{"name": "when", "type": {"type": "long", "logicalType": "` + logical + `"}},
			{"name": "amount", "type": {"type": "bytes", "logicalType": "decimal", "precision": 10, "scale": 2}}]}}], "default": null}`
	}
	field := func(typ string) string { return `{"name": "t", "type": ` + typ + `, "default": 0}` }
	for _, tc := range []struct{ name, level, before, after, want string }{
		{"a long made a timestamp", "", total, `{"name": "orderTotal", "type": {"type": "long", "logicalType": "timestamp-millis"}}`,
			"field orderTotal: logical type changed from none to timestamp-millis; the new schema and schemas/OrderCreated.avsc as of "},
		{"millis made micros, in a union of an array of records", "", at("timestamp-millis"), at("timestamp-micros"),
			"field at[].when: logical type changed from timestamp-millis to timestamp-micros"},
		{"an int's millis made a long's micros, a promotion", "BACKWARD",
			field(`{"type": "int", "logicalType": "time-millis"}`), field(`{"type": "long", "logicalType": "time-micros"}`),
			"field t: logical type changed from time-millis to time-micros"},
		{"the same", "", at("timestamp-millis"), at("timestamp-millis"), ""},
		{"under NONE", "NONE", total, `{"name": "orderTotal", "type": {"type": "long", "logicalType": "timestamp-millis"}}`, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			repo := newRepo(t)
			for _, c := range []struct{ fields, message string }{{tc.before, "before"}, {tc.after, "change"}} {
				if c.message == "change" {
					gitT(t, repo, "switch", "-q", "-c", "change")
				}
				writeSchema(t, repo, "OrderCreated.avsc", orderCreated(orderID, c.fields))
				gitT(t, repo, "add", "-A")
				gitT(t, repo, "commit", "-q", "--allow-empty", "-m", c.message)
			}
			out, err := check(t, options{dir: filepath.Join(repo, "schemas"), level: tc.level})
			wantVerdict(t, out, err, tc.want)
		})
	}
}

// The base is the newer of main and origin/main, the descendant when one
// is an ancestor of the other, else master's when there is no main.
func TestGitModeBaseIsTheNewestMain(t *testing.T) {
	withDefault := orderCreated(orderID, `{"name": "orderTotal", "type": "long", "default": 0}`)
	for _, tc := range []struct {
		name string
		// setup makes a repository whose HEAD is a branch that removes
		// orderTotal, off a commit where it has a default, and returns the
		// directory of its schemas and the ref that commit is on.
		setup func(t *testing.T) (dir, ref string)
	}{
		{"origin/main ahead of main", func(t *testing.T) (string, string) {
			repo := newRepo(t)
			clone := filepath.Join(t.TempDir(), "clone")
			gitT(t, "", "clone", "-q", repo, clone)
			writeSchema(t, repo, "OrderCreated.avsc", withDefault)
			commit(t, repo, "orderTotal gets a default")
			gitT(t, clone, "fetch", "-q")
			gitT(t, clone, "switch", "-q", "-c", "change", "origin/main")
			return clone, "origin/main"
		}},
		{"main ahead of origin/main", func(t *testing.T) (string, string) {
			repo := newRepo(t)
			clone := filepath.Join(t.TempDir(), "clone")
			gitT(t, "", "clone", "-q", repo, clone)
			writeSchema(t, clone, "OrderCreated.avsc", withDefault)
			commit(t, clone, "orderTotal gets a default")
			gitT(t, clone, "switch", "-q", "-c", "change")
			return clone, "main"
		}},
		{"master", func(t *testing.T) (string, string) {
			repo := t.TempDir()
			gitT(t, repo, "init", "-q", "-b", "master")
			writeSchema(t, repo, "OrderCreated.avsc", before)
			commit(t, repo, "OrderCreated")
			writeSchema(t, repo, "OrderCreated.avsc", withDefault)
			commit(t, repo, "orderTotal gets a default")
			gitT(t, repo, "switch", "-q", "-c", "change")
			return repo, "master"
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			repo, ref := tc.setup(t)
			writeSchema(t, repo, "OrderCreated.avsc", orderCreated(orderID))
			commit(t, repo, "remove orderTotal")
			out, err := check(t, options{dir: filepath.Join(repo, "schemas")})
			wantVerdict(t, out, err, "")
			if want := ref + " at the merge base " + gitT(t, repo, "rev-parse", "--short=7", ref); !strings.Contains(out, want) {
				t.Errorf("the output does not say %q", want)
			}
		})
	}
}

// Only a repository whose HEAD is its first commit has nothing to compare
// with; without a base to compare with (a shallow clone, no main, git
// failing) the check fails and says how to get one, rather than pass having
// compared nothing. A new schema has nothing to compare with either.
func TestGitModeWithNothingToCompareWith(t *testing.T) {
	brand := `{"type": "record", "name": "Brand", "fields": [{"name": "n", "type": "int"}]}`
	onTrunk := func(t *testing.T) string { // a repository whose one branch is not main
		repo := newRepo(t)
		gitT(t, repo, "branch", "-q", "-m", "trunk")
		writeSchema(t, repo, "Brand.avsc", brand)
		commit(t, repo, "add Brand")
		return filepath.Join(repo, "schemas")
	}
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T) (dir string) // the schemas' directory
		base  string                          // -base
		want  string                          // the output says it
		fails bool
	}{
		{"the first commit", func(t *testing.T) string {
			return filepath.Join(newRepo(t), "schemas")
		}, "", "nothing to compare with: HEAD is the first commit", false},
		// GitHub Actions' checkout fetches one commit unless told otherwise.
		{"a shallow clone", func(t *testing.T) string {
			repo := newRepo(t)
			writeSchema(t, repo, "OrderCreated.avsc", orderCreated(orderID, totalString))
			commit(t, repo, "change the type of orderTotal")
			shallow := filepath.Join(t.TempDir(), "shallow")
			gitT(t, "", "clone", "-q", "--depth", "1", "file://"+repo, shallow)
			return filepath.Join(shallow, "schemas")
		}, "", "a shallow clone: fetch main's history (actions/checkout's fetch-depth: 0, or git fetch --unshallow)", true},
		{"no main", onTrunk, "", "there is no main, origin/main, master or origin/master: fetch main (git fetch origin main), or pass -base <commit>", true},
		{"no main, with -base", onTrunk, "trunk", "HEAD's parent", false},
		{"not a git repository", func(t *testing.T) string {
			dir := t.TempDir()
			writeSchema(t, dir, "OrderCreated.avsc", before)
			return filepath.Join(dir, "schemas")
		}, "", "git rev-parse --verify HEAD: ", true},
		{"a new schema", func(t *testing.T) string {
			repo := newRepo(t)
			gitT(t, repo, "switch", "-q", "-c", "brand")
			writeSchema(t, repo, "Brand.avsc", brand)
			commit(t, repo, "add Brand")
			return filepath.Join(repo, "schemas")
		}, "", "Brand.avsc: new; nothing to compare with", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			out, err := check(t, options{dir: tc.setup(t), base: tc.base})
			if err != nil {
				out += err.Error()
			}
			if (err != nil) != tc.fails || !strings.Contains(out, tc.want) {
				t.Errorf("got %v, want it to fail: %v, saying %q", err, tc.fails, tc.want)
			}
		})
	}
}

// A record's previous versions are found by its full name and aliases,
// wherever its file is. A record main has and the branch has not fails:
// the records of it still in topics could no longer be decoded.
func TestGitModeFindsARecordByItsName(t *testing.T) {
	renamed := `{"type": "record", "namespace": "kafkasaga.orders", "name": "OrderCreated", "fields": [` + orderID + `, ` + total + `]}`
	aliased := `{"type": "record", "namespace": "kafkasaga.orders", "name": "OrderCreated", "aliases": ["kafkasaga.order.OrderCreated"], "fields": [` + orderID + `, ` + total + `]}`
	brand := `{"type": "record", "name": "Brand", "fields": [{"name": "n", "type": "int"}]}`
	for _, tc := range []struct {
		name   string
		level  string
		onMain string            // main's next OrderCreated.avsc, if any
		files  map[string]string // the branch's schemas/, in place of main's
		want   string
	}{
		{"moved to another file", "", "", map[string]string{"Order.avsc": orderCreated(orderID, totalString)},
			"schemas/Order.avsc: kafkasaga.order.OrderCreated (subject " + subject + ") field orderTotal: type changed from long to string"},
		// The registry's checker compares record names without their
		// namespace, but the serde finds a record's type by its full name.
		{"its namespace changed", "", "", map[string]string{"OrderCreated.avsc": renamed},
			`if it was renamed, list "kafkasaga.order.OrderCreated" in the new schema's aliases`},
		{"its namespace changed, the old name an alias", "", "", map[string]string{"OrderCreated.avsc": aliased},
			"kafkasaga.orders.OrderCreated: renamed from kafkasaga.order.OrderCreated, whose aliases do not list kafkasaga.orders.OrderCreated"},
		{"its namespace changed, the old name an alias, under BACKWARD", "BACKWARD", "", map[string]string{"OrderCreated.avsc": aliased}, ""},
		// Main's version names the new name, but the new schema, which
		// reads main's records, does not name theirs.
		{"renamed to an alias of main's, without the old name", "BACKWARD",
			`{"type": "record", "namespace": "kafkasaga.order", "name": "OrderCreated", "aliases": ["kafkasaga.orders.OrderCreated"], "fields": [` + orderID + `, ` + total + `]}`,
			map[string]string{"OrderCreated.avsc": renamed},
			"kafkasaga.orders.OrderCreated: written as kafkasaga.order.OrderCreated before, which is neither its full name nor one of its aliases"},
		{"removed", "", "", map[string]string{"Brand.avsc": brand}, "kafkasaga.order.OrderCreated, in main at the merge base "},
		{"removed, and listed in removed.txt", "", "", map[string]string{"Brand.avsc": brand,
			"removed.txt": "# no topic holds any since the v2 rollout\nkafkasaga.order.OrderCreated\n"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			repo := newRepo(t)
			if tc.onMain != "" {
				writeSchema(t, repo, "OrderCreated.avsc", tc.onMain)
				commit(t, repo, "OrderCreated on main")
			}
			gitT(t, repo, "switch", "-q", "-c", "change")
			if err := os.Remove(filepath.Join(repo, "schemas", "OrderCreated.avsc")); err != nil {
				t.Fatal(err)
			}
			for name, text := range tc.files {
				writeSchema(t, repo, name, text)
			}
			commit(t, repo, tc.name)
			out, err := check(t, options{dir: filepath.Join(repo, "schemas"), level: tc.level})
			wantVerdict(t, out, err, tc.want)
			if tc.want == "" && !strings.Contains(tc.name, "removed") && !strings.Contains(out, "1 compared") {
				t.Errorf("the output does not say the record was compared")
			}
		})
	}
}

// Under a transitive level every version in main's history counts, not
// only the merge base's: records of each may still be in a compacted state
// topic.
func TestGitModeComparesWithEveryVersion(t *testing.T) {
	repo := newRepo(t)
	writeSchema(t, repo, "OrderCreated.avsc", orderCreated(orderID, `{"name": "orderTotal", "type": "long", "default": 0}`))
	commit(t, repo, "orderTotal gets a default")
	withDefault := gitT(t, repo, "rev-parse", "--short=7", "HEAD")
	writeSchema(t, repo, "OrderCreated.avsc", orderCreated(orderID))
	commit(t, repo, "remove orderTotal")
	gitT(t, repo, "switch", "-q", "-c", "change")
	writeSchema(t, repo, "OrderCreated.avsc", orderCreated(orderID, totalStringDefault))
	commit(t, repo, "orderTotal again, a string")

	out, err := check(t, options{dir: filepath.Join(repo, "schemas")})
	wantVerdict(t, out, err, "field orderTotal: type changed from long to string; BACKWARD_TRANSITIVE forbids it: "+
		"the new schema cannot read data written with schemas/OrderCreated.avsc as of "+withDefault)
	// Compatible with the merge base's version, the only one FULL asks for.
	out, err = check(t, options{dir: filepath.Join(repo, "schemas"), level: "FULL"})
	wantVerdict(t, out, err, "")
}

// Forward, only main's latest version counts: it is the build running
// now, which reads what the new one writes during a rolling deploy; the
// state topics' old records are read by the new build, backward. Each case
// is a history of main, oldest first, after before, and the branch's
// change; full is what FULL_TRANSITIVE, which asks the forward half of
// every version, says.
func TestGitModeChecksForwardAgainstMainsLatestOnly(t *testing.T) {
	const (
		quantityInt     = `{"name": "quantity", "type": "int", "default": 0}`
		quantityLong    = `{"name": "quantity", "type": "long", "default": 0}`
		totalDefault    = `{"name": "orderTotal", "type": "long", "default": 0}`
		forwardFails    = "; FORWARD (main's latest) forbids it: schemas/OrderCreated.avsc as of "
		fullForwardFail = "; FULL_TRANSITIVE forbids it: schemas/OrderCreated.avsc as of "
	)
	for _, tc := range []struct {
		name       string
		main       [][]string // the fields of each next version on main
		change     []string   // the branch's
		want, full string
	}{
		// Removed from main once it had a default, then back as a long: the
		// new schema reads the old ints as longs.
		{"a field promoted from int to long", [][]string{{orderID, total, quantityInt}, {orderID, total}},
			[]string{orderID, total, quantityLong}, "", "field quantity: type changed from int to long" + fullForwardFail},
		{"a field removed that has a default in main's latest, not before", [][]string{{orderID, totalDefault}},
			[]string{orderID}, "", "field orderTotal: removed without a default" + fullForwardFail},
		{"a field removed that has no default in main's latest", [][]string{{orderID, totalDefault}, {orderID, total, currencyDefault}},
			[]string{orderID, currencyDefault}, "field orderTotal: removed without a default" + forwardFails, "removed without a default"},
		// Main's latest is the same as its first version, and compared as
		// that one.
		{"a field removed whose default main's latest dropped again", [][]string{{orderID, totalDefault}, {orderID, total}},
			[]string{orderID}, "field orderTotal: removed without a default" + forwardFails, "removed without a default"},
		// A branch merged by rebase leaves each of its commits on main.
		{"main has a field as an int, then as a long", [][]string{{orderID, total, quantityInt}, {orderID, total, quantityLong}},
			[]string{orderID, total, quantityLong, currencyDefault}, "", "field quantity: type changed from int to long" + fullForwardFail},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			repo := newRepo(t)
			for i, fields := range tc.main {
				writeSchema(t, repo, "OrderCreated.avsc", orderCreated(fields...))
				commit(t, repo, fmt.Sprintf("version %d", i+2))
			}
			gitT(t, repo, "switch", "-q", "-c", "change")
			writeSchema(t, repo, "OrderCreated.avsc", orderCreated(tc.change...))
			commit(t, repo, "change")
			out, err := check(t, options{dir: filepath.Join(repo, "schemas")})
			wantVerdict(t, out, err, tc.want)
			if want := "under BACKWARD_TRANSITIVE (every version) and FORWARD (main's latest)"; !strings.Contains(out, want) {
				t.Errorf("the output does not say it checked %q", want)
			}
			out, err = check(t, options{dir: filepath.Join(repo, "schemas"), level: "FULL_TRANSITIVE"})
			wantVerdict(t, out, err, tc.full)
		})
	}
}

func TestRegistryMode(t *testing.T) {
	for _, tc := range changes {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			stack := devstack.StartForTest(t)
			client := srclient.NewSchemaRegistryClient(stack.RegistryURL())
			if _, err := client.CreateSchema(subject, before, srclient.Avro); err != nil {
				t.Fatalf("register the previous version: %v", err)
			}
			dir := t.TempDir()
			after := orderCreated(tc.fields...)
			if err := os.WriteFile(filepath.Join(dir, "OrderCreated.avsc"), []byte(after), 0o644); err != nil {
				t.Fatal(err)
			}

			// The subject keeps the registry's default level, BACKWARD: the
			// check's own default does not come from the registry.
			out, err := check(t, options{dir: dir, registry: stack.RegistryURL(), level: tc.level})
			wantVerdict(t, out, err, tc.want)
			if tc.want != "" && !strings.Contains(out, "version 1 of "+subject) {
				t.Errorf("the output does not name version 1 of %s", subject)
			}
			// The registry's verdict under the same level is the same. With
			// one version registered, the default policy is FULL.
			level := cmp.Or(tc.level, "FULL")
			if _, err := client.ChangeSubjectCompatibilityLevel(subject, srclient.CompatibilityLevel(level)); err != nil {
				t.Fatalf("set the level of %s: %v", subject, err)
			}
			_, err = client.CreateSchema(subject, after, srclient.Avro)
			if refused := err != nil; refused != (tc.want != "") {
				t.Errorf("the registry refused it: %v (%v), schemas-check: %v", refused, err, tc.want != "")
			}
		})
	}
}

// Against a registry, the default policy is the same: backward against
// every version of the subject, forward against its latest. The registry,
// at the BACKWARD_TRANSITIVE provision sets, takes what the check passes.
func TestRegistryModeChecksForwardAgainstTheLatestOnly(t *testing.T) {
	totalDefault := `{"name": "orderTotal", "type": "long", "default": 0}`
	for _, tc := range []struct {
		name       string
		registered [][]string // the fields of each version, after before
		fields     []string
		want, full string // the default policy's verdict, FULL_TRANSITIVE's
	}{
		{"a field removed that has a default in the latest version, not before", [][]string{{orderID, totalDefault}},
			[]string{orderID}, "", "field orderTotal: removed without a default; FULL_TRANSITIVE forbids it: version 1 of " + subject},
		{"a field removed that has no default in the latest version", [][]string{{orderID, totalDefault}, {orderID, total, currencyDefault}},
			[]string{orderID, currencyDefault}, "field orderTotal: removed without a default; FORWARD (the registry's latest) forbids it: version 3 of " + subject, "removed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			stack := devstack.StartForTest(t)
			client := srclient.NewSchemaRegistryClient(stack.RegistryURL())
			if _, err := client.ChangeSubjectCompatibilityLevel(subject, srclient.BackwardTransitive); err != nil {
				t.Fatalf("set the level of %s: %v", subject, err)
			}
			for _, fields := range append([][]string{{orderID, total}}, tc.registered...) {
				if _, err := client.CreateSchema(subject, orderCreated(fields...), srclient.Avro); err != nil {
					t.Fatalf("register a previous version: %v", err)
				}
			}
			dir := t.TempDir()
			after := orderCreated(tc.fields...)
			if err := os.WriteFile(filepath.Join(dir, "OrderCreated.avsc"), []byte(after), 0o644); err != nil {
				t.Fatal(err)
			}
			out, err := check(t, options{dir: dir, registry: stack.RegistryURL()})
			wantVerdict(t, out, err, tc.want)
			if want := "under BACKWARD_TRANSITIVE (every version) and FORWARD (the registry's latest)"; !strings.Contains(out, want) {
				t.Errorf("the output does not say it checked %q", want)
			}
			out, err = check(t, options{dir: dir, registry: stack.RegistryURL(), level: "FULL_TRANSITIVE"})
			wantVerdict(t, out, err, tc.full)
			if tc.want == "" {
				if _, err := client.CreateSchema(subject, after, srclient.Avro); err != nil {
					t.Errorf("the registry refused what the check passed: %v", err)
				}
			}
		})
	}
}

// A subject the registry does not have yet is new: nothing to compare with.
func TestRegistryModeWithANewSubject(t *testing.T) {
	stack := devstack.StartForTest(t)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "OrderCreated.avsc"), []byte(before), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := check(t, options{dir: dir, registry: stack.RegistryURL()})
	if err != nil || !strings.Contains(out, "subject "+subject+" is new") {
		t.Errorf("got %v, want a pass that says %s is new", err, subject)
	}
}

// A record renamed, its old name kept as an alias, is compared with the
// versions registered under the old name: those are what it reads.
func TestRegistryModeComparesARenamedRecordWithItsOldSubject(t *testing.T) {
	stack := devstack.StartForTest(t)
	client := srclient.NewSchemaRegistryClient(stack.RegistryURL())
	if _, err := client.CreateSchema(subject, before, srclient.Avro); err != nil {
		t.Fatalf("register the previous version: %v", err)
	}
	dir := t.TempDir()
	renamed := `{"type": "record", "namespace": "kafkasaga.orders", "name": "OrderCreated", "aliases": ["kafkasaga.order.OrderCreated"], "fields": [` +
		orderID + `, ` + totalString + `]}`
	if err := os.WriteFile(filepath.Join(dir, "OrderCreated.avsc"), []byte(renamed), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := check(t, options{dir: dir, registry: stack.RegistryURL()})
	wantVerdict(t, out, err, "field orderTotal: type changed from long to string")
	if !strings.Contains(out, "version 1 of "+subject) {
		t.Errorf("the output does not name version 1 of %s, the old name's subject", subject)
	}
}

// A record no topic lists, by its name or an alias, has no subject to be
// compared with: the check fails rather than pass having compared nothing.
func TestRegistryModeRefusesARecordOfNoTopic(t *testing.T) {
	stack := devstack.StartForTest(t)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "Stray.avsc"), []byte(`{"type": "record", "name": "Stray", "namespace": "kafkasaga.nowhere", "fields": []}`), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := check(t, options{dir: dir, registry: stack.RegistryURL()})
	if err == nil || !strings.Contains(err.Error(), "no topic in contracts/topics.go lists it") {
		t.Errorf("got %v (output %q), want the record of no topic refused", err, out)
	}
}

// newRepo returns a git repository whose main branch has one commit, with
// before in schemas/OrderCreated.avsc.
func newRepo(t *testing.T) string {
	t.Helper()
	repo := t.TempDir()
	gitT(t, repo, "init", "-q", "-b", "main")
	writeSchema(t, repo, "OrderCreated.avsc", before)
	commit(t, repo, "OrderCreated")
	return repo
}

func writeSchema(t *testing.T, repo, name, text string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Join(repo, "schemas"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(repo, "schemas", name), []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}

func commit(t *testing.T, repo, message string) {
	t.Helper()
	gitT(t, repo, "add", "-A")
	gitT(t, repo, "commit", "-q", "-m", message)
}

// gitT runs git in dir, apart from the user's and the machine's git
// configuration.
func gitT(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_CONFIG_GLOBAL=/dev/null", "GIT_CONFIG_NOSYSTEM=1",
		"GIT_AUTHOR_NAME=test", "GIT_AUTHOR_EMAIL=test@example.com", "GIT_COMMITTER_NAME=test", "GIT_COMMITTER_EMAIL=test@example.com")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}
