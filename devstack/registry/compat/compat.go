// Package compat decides whether an Avro schema may follow the earlier
// versions of its subject under a Confluent compatibility level, with
// hamba/avro's SchemaCompatibility and rules of its own for what the serde
// cannot read: a backward check refuses an existing field of a type other
// than a record made nullable (madeNullable), a forward check such a field
// made not nullable, every check a change that
// hamba cannot resolve (Readable), and CheckDefaults a default that hamba
// would read as another number. The embedded
// registry checks every registration with it, and
// contracts/cmd/schemas-check checks the contracts' schemas with it before
// they ship, so both give one verdict; schemas-check also refuses what
// LogicalTypesChanged finds, which Confluent's registry takes.
package compat

import (
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/hamba/avro/v2"
)

// Compatibility levels, as Confluent names them.
const (
	None = "NONE"
	// Default is the level of a subject when neither it nor the registry
	// has one configured.
	Default = "BACKWARD"

	transitiveSuffix = "_TRANSITIVE"
)

// ValidLevel reports whether level is one of Confluent's levels.
func ValidLevel(level string) bool {
	switch level {
	case "NONE", "BACKWARD", "FORWARD", "FULL", "BACKWARD_TRANSITIVE", "FORWARD_TRANSITIVE", "FULL_TRANSITIVE":
		return true
	}
	return false
}

// Parse parses one schema on its own. It uses a cache per parse: hamba's
// default cache is process-wide, and with it a schema could use a named
// type that only some other schema defines.
//
// hamba allocates a fixed type's size for every default value it checks
// against it: a fixed larger than MaxFixedSize is refused before hamba
// parses it (a size of 2^40 stopped the process, out of memory), and so
// is a schema whose defaults would take more than MaxDefaultBytes that
// way (a thousand empty strings as the default of an array of a 1 MiB
// fixed took gigabytes).
func Parse(text string) (avro.Schema, error) {
	dec := json.NewDecoder(strings.NewReader(text))
	dec.UseNumber()
	var tree any
	if err := dec.Decode(&tree); err == nil {
		var w fixedWalk
		if err := w.walk(tree, false); err != nil {
			return nil, err
		}
		if w.largest*int64(w.defaults) > MaxDefaultBytes {
			return nil, fmt.Errorf("%d values in defaults, with a fixed type of %d bytes: more than %d bytes to check them",
				w.defaults, w.largest, MaxDefaultBytes)
		}
	}
	return avro.ParseWithCache(text, "", &avro.SchemaCache{})
}

const (
	// MaxFixedSize is the largest fixed type Parse takes, in bytes.
	MaxFixedSize = 1 << 20
	// MaxDefaultBytes bounds the values in a schema's defaults times its
	// largest fixed type: what hamba may allocate to check the defaults.
	MaxDefaultBytes = 4 * MaxFixedSize
)

// fixedWalk finds a schema's largest fixed type and counts the values
// (strings) in its defaults.
type fixedWalk struct {
	largest  int64
	defaults int
}

func (w *fixedWalk) walk(node any, inDefault bool) error {
	switch n := node.(type) {
	case string:
		if inDefault {
			w.defaults++
		}
	case map[string]any:
		if n["type"] == "fixed" && !inDefault {
			if size, ok := n["size"].(json.Number); ok {
				v, err := size.Int64()
				if err != nil || v < 0 || v > MaxFixedSize {
					return fmt.Errorf("fixed %v has size %s: want 0 to %d", n["name"], size, MaxFixedSize)
				}
				w.largest = max(w.largest, v)
			}
		}
		for k, v := range n {
			if err := w.walk(v, inDefault || k == "default"); err != nil {
				return err
			}
		}
	case []any:
		for _, v := range n {
			if err := w.walk(v, inDefault); err != nil {
				return err
			}
		}
	}
	return nil
}

// CheckDefaults refuses a schema with a default, or a value within one,
// for an int or a long (or a union whose first type is one) that hamba,
// which reads a JSON number as a float64, would read as another number: a
// number that is not an integer, an int past 32 bits, a long past 2^53
// (the largest long came back as the smallest). Confluent refuses the
// first two. For schemas offered to be registered, not for those already
// written with: a writer's defaults play no part in decoding.
func CheckDefaults(text string) error {
	dec := json.NewDecoder(strings.NewReader(text))
	dec.UseNumber()
	var tree any
	if err := dec.Decode(&tree); err != nil {
		return nil // Parse says why
	}
	named := map[string]any{}
	collectNamed(tree, "", named)
	return fieldDefaults(tree, named)
}

// collectNamed indexes the records, enums and fixed types defined in node
// by full name and by name, so that a default given for a named type used
// again is checked as one given in place.
func collectNamed(node any, ns string, named map[string]any) {
	switch n := node.(type) {
	case map[string]any:
		if name, ok := n["name"].(string); ok && (n["type"] == "record" || n["type"] == "enum" || n["type"] == "fixed") {
			if s, ok := n["namespace"].(string); ok {
				ns = s
			}
			full := name
			if !strings.Contains(name, ".") && ns != "" {
				full = ns + "." + name
			}
			if i := strings.LastIndex(full, "."); i >= 0 {
				ns = full[:i]
			}
			named[full] = n
			named[full[strings.LastIndex(full, ".")+1:]] = n
		}
		for k, v := range n {
			if k != "default" {
				collectNamed(v, ns, named)
			}
		}
	case []any:
		for _, v := range n {
			collectNamed(v, ns, named)
		}
	}
}

// fieldDefaults checks the default of every field within node.
func fieldDefaults(node any, named map[string]any) error {
	switch n := node.(type) {
	case map[string]any:
		if d, ok := n["default"]; ok && n["name"] != nil {
			if err := integerValue(n["type"], d, named); err != nil {
				return fmt.Errorf("field %v: default: %w", n["name"], err)
			}
		}
		for k, v := range n {
			if k == "default" {
				continue
			}
			if err := fieldDefaults(v, named); err != nil {
				return err
			}
		}
	case []any:
		for _, v := range n {
			if err := fieldDefaults(v, named); err != nil {
				return err
			}
		}
	}
	return nil
}

// integerValue checks v, a default's value of type t (a schema's JSON),
// where t is or holds an int or a long: through records, arrays and maps
// defined in place or named again, and a union's first type.
func integerValue(t, v any, named map[string]any) error {
	if union, ok := t.([]any); ok && len(union) > 0 {
		t = union[0]
	}
	if name, ok := t.(string); ok && named[name] != nil {
		t = named[name]
	}
	m, ok := t.(map[string]any)
	if ok {
		switch m["type"] {
		case "array":
			items, _ := v.([]any)
			for _, e := range items {
				if err := integerValue(m["items"], e, named); err != nil {
					return err
				}
			}
			return nil
		case "map":
			values, _ := v.(map[string]any)
			for _, e := range values {
				if err := integerValue(m["values"], e, named); err != nil {
					return err
				}
			}
			return nil
		case "record":
			fields, _ := m["fields"].([]any)
			values, _ := v.(map[string]any)
			for _, f := range fields {
				f, _ := f.(map[string]any)
				name, _ := f["name"].(string)
				if e, ok := values[name]; ok {
					if err := integerValue(f["type"], e, named); err != nil {
						return fmt.Errorf("%s: %w", name, err)
					}
				}
			}
			return nil
		}
		t = m["type"] // a primitive with a logical type
	}
	var lo, hi int64
	switch t {
	case "int":
		lo, hi = math.MinInt32, math.MaxInt32
	case "long":
		lo, hi = -1<<53, 1<<53
	default:
		return nil
	}
	d, ok := v.(json.Number)
	if !ok {
		return nil // not a number: hamba's parse says so
	}
	if n, err := strconv.ParseInt(d.String(), 10, 64); err != nil || n < lo || n > hi {
		return fmt.Errorf("%s: want an integer from %d to %d for a %s", d, lo, hi, t)
	}
	return nil
}

// Version is an earlier schema of a subject.
type Version struct {
	Number int
	Schema avro.Schema
}

// Problem is one way a candidate schema breaks its level.
type Problem struct {
	Version int // the number of the earlier version it breaks with
	// Backward: the new schema cannot read data written with the earlier
	// version. Otherwise (forward) the earlier version cannot read data
	// written with the new schema.
	Backward bool
	// Field is the field at fault, as a path from the record ("history[].at"),
	// and Change what became of it ("added without a default"); both are
	// empty when no one field is (a renamed record, a lost enum symbol).
	Field, Change string
	Err           error // the checker's verdict
}

func (p Problem) Error() string {
	if p.Backward {
		return fmt.Sprintf("the new schema cannot read data written with version %d: %v", p.Version, p.Err)
	}
	return fmt.Sprintf("version %d cannot read data written with the new schema: %v", p.Version, p.Err)
}

// Check checks candidate against previous (oldest first) under level and
// returns every problem; none means compatible. BACKWARD: the candidate can
// read what the previous schema wrote; FORWARD: the previous schema can read
// what the candidate writes; FULL: both. Without _TRANSITIVE only the latest
// previous schema counts.
// Directions says what a compatibility level checks: that the candidate
// reads what earlier schemas wrote (backward), that they read what it
// writes (forward), and against every earlier schema rather than the
// latest (transitive).
func Directions(level string) (backward, forward, transitive bool) {
	base := strings.TrimSuffix(level, transitiveSuffix)
	return base == "BACKWARD" || base == "FULL", base == "FORWARD" || base == "FULL", base != level
}

func Check(level string, candidate avro.Schema, previous []Version) []Problem {
	if level == None || len(previous) == 0 {
		return nil
	}
	backward, forward, transitive := Directions(level)
	latest := previous[len(previous)-1]
	if field := promoting(candidate); field != "" && candidate.Fingerprint() != latest.Schema.Fingerprint() {
		// Said where it is, and when it comes: any change of a record
		// that holds one fails to resolve, so it is refused from the first.
		return []Problem{{Version: latest.Number, Backward: backward, Field: field, Change: "a union holding a type and one it promotes to",
			Err: fmt.Errorf("%s is a union holding a type and one it promotes to: Avro allows it, but hamba/avro, the serde's library, resolves the one as the other and then holds a type twice, so no other version of the record could be read", field)}}
	}
	if !transitive {
		previous = previous[len(previous)-1:]
	}
	var problems []Problem
	for _, old := range previous {
		if backward {
			if err := Compatible(candidate, old.Schema); err != nil {
				field, change := locate(candidate, old.Schema, true, "")
				problems = append(problems, Problem{Version: old.Number, Backward: true, Field: field, Change: change, Err: err})
			} else if field := madeNullable(candidate, old.Schema, ""); field != "" {
				problems = append(problems, Problem{Version: old.Number, Backward: true, Field: field, Change: "made nullable",
					Err: fmt.Errorf("%s became a union with null: Avro allows it, but hamba/avro, the serde's library, cannot read a value written before into the field's Go pointer (add a new nullable field instead)", field)})
			}
		}
		if forward {
			if err := Compatible(old.Schema, candidate); err != nil {
				field, change := locate(old.Schema, candidate, false, "")
				problems = append(problems, Problem{Version: old.Number, Field: field, Change: change, Err: err})
			} else if field := madeNullable(old.Schema, candidate, ""); field != "" {
				problems = append(problems, Problem{Version: old.Number, Field: field, Change: "made not nullable",
					Err: fmt.Errorf("%s is a union with null in version %d and not in the new schema: hamba/avro, the serde's library, cannot read the new value into that version's Go pointer", field, old.Number)})
			}
		}
	}
	return problems
}

// Compatible reports why reader cannot read what writer wrote, or nil:
// Avro's rules, and what hamba/avro, the serde's library, can resolve
// (Readable). It uses a fresh checker for every pair:
// avro.SchemaCompatibility caches its verdicts by Parsing Canonical Form,
// which ignores defaults, so a shared checker would reuse the verdict for
// a schema differing only there.
func Compatible(reader, writer avro.Schema) error {
	if err := avro.NewSchemaCompatibility().Compatible(reader, writer); err != nil {
		return err
	}
	_, err := Readable(reader, writer)
	return err
}

// Readable returns the schema that decodes, into reader's types, what
// writer wrote: reader itself when the two differ only where the wire
// format does not (defaults, docs: Parsing Canonical Form), else hamba's
// resolution of the two. It refuses what hamba cannot resolve although
// Avro allows it: a writer that refers to itself (its resolution recurses
// for ever), and a union whose resolved branches would repeat a type (a
// bytes branch read as the string branch beside it).
func Readable(reader, writer avro.Schema) (avro.Schema, error) {
	if writer.Fingerprint() == reader.Fingerprint() {
		return reader, nil
	}
	if name := recursive(writer); name != "" {
		return nil, fmt.Errorf("the writer's %s refers to itself, and differs from the reader: hamba/avro, the serde's library, cannot resolve it", name)
	}
	// A fresh checker, as in Compatible: resolution depends on defaults.
	return avro.NewSchemaCompatibility().Resolve(reader, writer)
}

// recursive returns the name of a record of s that refers to itself, or
// "".
func recursive(s avro.Schema) string {
	return find(s, "", nil, func(s avro.Schema, _ string, within []string) string {
		if ref, ok := s.(*avro.RefSchema); ok && slices.Contains(within, ref.Schema().FullName()) {
			return ref.Schema().FullName()
		}
		return ""
	})
}

// find walks s depth first and returns the first of visit's answers that
// is not "". visit is given each schema, its path (fields by name, []
// for an array's items, {} for a map's values) and the records it is in;
// a reference to one of them is visited, not followed, so that a record
// that refers to itself ends.
func find(s avro.Schema, path string, within []string, visit func(s avro.Schema, path string, within []string) string) string {
	if found := visit(s, path, within); found != "" {
		return found
	}
	switch s := s.(type) {
	case *avro.RefSchema:
		if slices.Contains(within, s.Schema().FullName()) {
			return ""
		}
		return find(s.Schema(), path, within, visit)
	case *avro.RecordSchema:
		within = append(within, s.FullName())
		for _, f := range s.Fields() {
			if found := find(f.Type(), strings.TrimPrefix(path+"."+f.Name(), "."), within, visit); found != "" {
				return found
			}
		}
	case *avro.ArraySchema:
		return find(s.Items(), path+"[]", within, visit)
	case *avro.MapSchema:
		return find(s.Values(), path+"{}", within, visit)
	case *avro.UnionSchema:
		for _, t := range s.Types() {
			if found := find(t, path, within, visit); found != "" {
				return found
			}
		}
	}
	return ""
}

// locate names the field that keeps reader from reading what writer wrote,
// descending into records, arrays and maps, and says what became of it.
// The verdict is Compatible's; this only points at its cause. readerIsNew
// says which schema is the new one.
func locate(reader, writer avro.Schema, readerIsNew bool, path string) (field, change string) {
	switch r := reader.(type) {
	case *avro.RecordSchema:
		w, ok := writer.(*avro.RecordSchema)
		if !ok || r.Name() != w.Name() && !slices.Contains(r.Aliases(), w.FullName()) {
			return "", "" // the records themselves differ, as the checker says
		}
		for _, rf := range r.Fields() {
			name := strings.TrimPrefix(path+"."+rf.Name(), ".")
			wf := writerField(w, rf)
			if wf == nil {
				if rf.HasDefault() {
					continue
				}
				if readerIsNew {
					return name, "added without a default"
				}
				return name, "removed without a default"
			}
			if Compatible(rf.Type(), wf.Type()) == nil {
				continue
			}
			if f, c := locate(rf.Type(), wf.Type(), readerIsNew, name); f != "" {
				return f, c
			}
			before, after := wf.Type(), rf.Type()
			if !readerIsNew {
				before, after = after, before
			}
			return name, fmt.Sprintf("type changed from %s to %s", typeName(before), typeName(after))
		}
	case *avro.ArraySchema:
		if w, ok := writer.(*avro.ArraySchema); ok {
			return locate(r.Items(), w.Items(), readerIsNew, path+"[]")
		}
	case *avro.MapSchema:
		if w, ok := writer.(*avro.MapSchema); ok {
			return locate(r.Values(), w.Values(), readerIsNew, path+"{}")
		}
	}
	return "", ""
}

// madeNullable names the first field of reader, descending into records,
// arrays, maps and the branches of unions, whose writer type, not a union, became a union of null
// and that type, a record's excepted. Avro reads such data (the union's
// branch), but hamba/avro resolves the field to the writer's plain type
// and then cannot decode it into the Go pointer generated for the union:
// every message written before would be undecodable.
func madeNullable(reader, writer avro.Schema, path string) string {
	return nullableIn(reader, writer, path, map[[2]string]bool{})
}

// nullableIn is madeNullable; seen stops at a pair of records walked
// already (a record that refers to itself).
func nullableIn(reader, writer avro.Schema, path string, seen map[[2]string]bool) string {
	if reader.Fingerprint() == writer.Fingerprint() {
		return "" // the same
	}
	// A named type used again is a reference to it: what it names counts.
	reader, writer = deref(reader), deref(writer)
	switch r := reader.(type) {
	case *avro.RecordSchema:
		w, ok := writer.(*avro.RecordSchema)
		if !ok || seen[[2]string{w.FullName(), r.FullName()}] {
			return ""
		}
		seen[[2]string{w.FullName(), r.FullName()}] = true
		for _, rf := range r.Fields() {
			if wf := writerField(w, rf); wf != nil {
				if f := nullableIn(rf.Type(), wf.Type(), strings.TrimPrefix(path+"."+rf.Name(), "."), seen); f != "" {
					return f
				}
			}
		}
	case *avro.ArraySchema:
		if w, ok := writer.(*avro.ArraySchema); ok {
			return nullableIn(r.Items(), w.Items(), path+"[]", seen)
		}
	case *avro.MapSchema:
		if w, ok := writer.(*avro.MapSchema); ok {
			return nullableIn(r.Values(), w.Values(), path+"{}", seen)
		}
	case *avro.UnionSchema:
		// Within a branch that reads a record, an array or a map the
		// writer wrote (as a branch or not), a field counts as anywhere.
		for _, rb := range r.Types() {
			for _, wb := range branches(writer) {
				switch deref(wb).(type) {
				case *avro.RecordSchema, *avro.ArraySchema, *avro.MapSchema:
					if readsAs(deref(rb), deref(wb)) {
						if f := nullableIn(rb, wb, path, seen); f != "" {
							return f
						}
					}
				}
			}
		}
		if _, union := writer.(*avro.UnionSchema); union || !r.Nullable() || writer.Type() == avro.Null {
			return ""
		}
		if _, record := writer.(*avro.RecordSchema); record {
			return ""
		}
		return path
	}
	return ""
}

// LogicalTypeChanged starts the Change of each problem LogicalTypesChanged
// returns.
const LogicalTypeChanged = "logical type changed"

// LogicalTypesChanged returns a problem (Field and Change, Err; no Version
// nor direction) for each field of reader whose logical type differs from
// that of its field in writer, of one Avro type or a promotion of it: a
// timestamp in millis made micros, a decimal's precision or scale
// changed, a long made a timestamp. Avro's resolution lets such a change
// through, and Check with it, as Confluent's registry does, but each side
// then reads the other's values as other values (a 2025 time in micros
// read as millis is the year 56974). contracts/cmd/schemas-check refuses
// them; the registry, which must take what Confluent's takes, does not.
func LogicalTypesChanged(reader, writer avro.Schema) []Problem {
	var problems []Problem
	logicalTypes(reader, writer, "", map[[2]string]bool{}, func(field, from, to string) {
		problems = append(problems, Problem{Field: field, Change: fmt.Sprintf("%s from %s to %s", LogicalTypeChanged, from, to),
			Err: fmt.Errorf("%s: logical type %s made %s: each side would read the other's values as other values (add a field instead)", field, from, to)})
	})
	return problems
}

// logicalTypes walks reader and writer as madeNullable does; seen stops
// at a pair of records walked already.
func logicalTypes(reader, writer avro.Schema, path string, seen map[[2]string]bool, report func(field, from, to string)) {
	reader, writer = deref(reader), deref(writer)
	switch r := reader.(type) {
	case *avro.RecordSchema:
		w, ok := writer.(*avro.RecordSchema)
		if !ok || seen[[2]string{w.FullName(), r.FullName()}] {
			return
		}
		seen[[2]string{w.FullName(), r.FullName()}] = true
		for _, rf := range r.Fields() {
			if wf := writerField(w, rf); wf != nil {
				logicalTypes(rf.Type(), wf.Type(), strings.TrimPrefix(path+"."+rf.Name(), "."), seen, report)
			}
		}
	case *avro.ArraySchema:
		if w, ok := writer.(*avro.ArraySchema); ok {
			logicalTypes(r.Items(), w.Items(), path+"[]", seen, report)
		}
	case *avro.MapSchema:
		if w, ok := writer.(*avro.MapSchema); ok {
			logicalTypes(r.Values(), w.Values(), path+"{}", seen, report)
		}
	case *avro.UnionSchema:
		for _, branch := range r.Types() {
			for _, wb := range branches(writer) {
				if readsAs(deref(branch), deref(wb)) {
					logicalTypes(branch, wb, path, seen, report)
				}
			}
		}
	default:
		for _, wb := range branches(writer) { // a union's branch made a field's one type too
			if wb = deref(wb); readsAs(reader, wb) {
				if from, to := logicalName(wb), logicalName(reader); from != to {
					report(path, from, to)
				}
			}
		}
	}
}

// deref is the schema a reference (a named type used again) names, or s.
func deref(s avro.Schema) avro.Schema {
	if ref, ok := s.(*avro.RefSchema); ok {
		return ref.Schema()
	}
	return s
}

// branches is s's branches, or s alone.
func branches(s avro.Schema) []avro.Schema {
	if u, ok := deref(s).(*avro.UnionSchema); ok {
		return u.Types()
	}
	return []avro.Schema{s}
}

// readsAs reports whether reader reads what writer wrote, a union's branch
// or not: of one type or one it promotes to and, named, of one name (or
// one of reader's aliases).
func readsAs(reader, writer avro.Schema) bool {
	if reader.Type() != writer.Type() {
		return slices.Contains(promotions[writer.Type()], reader.Type())
	}
	r, rNamed := reader.(avro.NamedSchema)
	w, wNamed := writer.(avro.NamedSchema)
	return !rNamed || !wNamed || r.FullName() == w.FullName() || slices.Contains(r.Aliases(), w.FullName())
}

// logicalName is s's logical type, a decimal's with its precision and
// scale, or none.
func logicalName(s avro.Schema) string {
	l, ok := s.(avro.LogicalTypeSchema)
	if !ok || l.Logical() == nil {
		return "none"
	}
	if d, ok := l.Logical().(*avro.DecimalLogicalSchema); ok {
		return fmt.Sprintf("decimal(%d,%d)", d.Precision(), d.Scale())
	}
	return string(l.Logical().Type())
}

// promoting returns the path of a union of s that holds a type and one
// it promotes to (int to long, float or double; long to float or double;
// float to double; string and bytes either way), or "".
func promoting(s avro.Schema) string {
	return find(s, "", nil, func(s avro.Schema, path string, _ []string) string {
		union, ok := s.(*avro.UnionSchema)
		if !ok {
			return ""
		}
		types := union.Types()
		for _, a := range types {
			for _, b := range types {
				if slices.Contains(promotions[a.Type()], b.Type()) {
					return path
				}
			}
		}
		return ""
	})
}

// promotions are the types each type is promoted to when read.
var promotions = map[avro.Type][]avro.Type{
	avro.Int: {avro.Long, avro.Float, avro.Double}, avro.Long: {avro.Float, avro.Double},
	avro.Float: {avro.Double}, avro.String: {avro.Bytes}, avro.Bytes: {avro.String},
}

// writerField is the field of w that hamba's checker reads f from: the
// first of f's name or of one of f's aliases.
func writerField(w *avro.RecordSchema, f *avro.Field) *avro.Field {
	for _, wf := range w.Fields() {
		if wf.Name() == f.Name() || slices.Contains(f.Aliases(), wf.Name()) {
			return wf
		}
	}
	return nil
}

func typeName(s avro.Schema) string {
	switch s := s.(type) {
	case avro.NamedSchema:
		return s.FullName()
	case *avro.PrimitiveSchema:
		if l := s.Logical(); l != nil {
			return fmt.Sprintf("%s (%s)", s.Type(), l.Type())
		}
		return string(s.Type())
	}
	return s.String()
}
