package registry

import (
	"cmp"
	"encoding/json"
	"fmt"
	"slices"

	"github.com/kafkasaga/kafkasaga/devstack/registry/compat"
)

// Keys and values of the schemas topic, in Confluent Schema Registry's own
// JSON format, so that either registry can read a topic the other wrote.
// Field order matters: compaction works on the key bytes.
type storeKey struct {
	KeyType string  `json:"keytype"`
	Subject *string `json:"subject"`
	Version int     `json:"version,omitempty"`
	Magic   int     `json:"magic"`
}

const (
	keySchema        = "SCHEMA"
	keyConfig        = "CONFIG"
	keyDeleteSubject = "DELETE_SUBJECT" // written by Confluent on soft delete; we only read it
)

type schemaValue struct {
	Subject    string `json:"subject"`
	Version    int    `json:"version"`
	ID         int    `json:"id"`
	SchemaType string `json:"schemaType,omitempty"`
	Schema     string `json:"schema"`
	Deleted    bool   `json:"deleted"`
}

type configValue struct {
	CompatibilityLevel string `json:"compatibilityLevel"`
}

type deleteSubjectValue struct {
	Subject string `json:"subject"`
	Version int    `json:"version"`
}

// record is one write to the schemas topic; a nil value deletes the key.
type record struct{ key, value []byte }

func schemaKey(subject string, version int) storeKey {
	return storeKey{KeyType: keySchema, Subject: &subject, Version: version, Magic: 1}
}

// configKey is the key of a subject's compatibility level, or of the global
// one when subject is nil.
func configKey(subject *string) storeKey {
	return storeKey{KeyType: keyConfig, Subject: subject}
}

func newRecord(k storeKey, v any) (record, error) {
	key, err := json.Marshal(k)
	if err != nil {
		return record{}, fmt.Errorf("encode key: %w", err)
	}
	if v == nil {
		return record{key: key}, nil
	}
	value, err := json.Marshal(v)
	if err != nil {
		return record{}, fmt.Errorf("encode value: %w", err)
	}
	return record{key: key, value: value}, nil
}

// schema is one registered schema; every subject-version with the same
// canonical form shares it and its id.
type schema struct {
	id int
	parsedSchema
}

type version struct {
	subject string
	version int
	schema  *schema
	deleted bool
}

// state is the registry's whole content, rebuilt from the schemas topic.
// Changes come only through apply, from records already written to Kafka,
// so memory is always what a restart would rebuild (but for the ids of
// failed writes, which burnIDs keeps from being handed out).
type state struct {
	byID        map[int]*schema
	byCanonical map[string]*schema
	subjects    map[string][]*version // ascending by version
	global      string                // "" means compat.Default
	levels      map[string]string     // per subject
	maxID       int
	// unreadable holds, by subject, the versions whose records apply
	// refused: another schema type than Avro, or a text the parser refuses.
	// They are not served, but their numbers are taken.
	unreadable map[string]map[int]bool
}

func newState() *state {
	return &state{
		byID:        make(map[int]*schema),
		byCanonical: make(map[string]*schema),
		subjects:    make(map[string][]*version),
		levels:      make(map[string]string),
		unreadable:  make(map[string]map[int]bool),
	}
}

// apply changes the state by one record of the schemas topic.
func (st *state) apply(key, value []byte) error {
	var k storeKey
	if err := json.Unmarshal(key, &k); err != nil {
		return fmt.Errorf("decode key %s: %w", key, err)
	}
	var subject string
	if k.Subject != nil {
		subject = *k.Subject
	}
	switch k.KeyType {
	case keySchema:
		if len(value) == 0 {
			st.removeVersion(subject, k.Version)
			return nil
		}
		var v schemaValue
		if err := json.Unmarshal(value, &v); err != nil {
			return fmt.Errorf("decode schema value %s: %w", value, err)
		}
		return st.putVersion(v)
	case keyConfig:
		var v configValue
		if len(value) > 0 {
			if err := json.Unmarshal(value, &v); err != nil {
				return fmt.Errorf("decode config value %s: %w", value, err)
			}
		}
		switch {
		case k.Subject == nil:
			st.global = v.CompatibilityLevel
		case v.CompatibilityLevel == "":
			delete(st.levels, subject)
		default:
			st.levels[subject] = v.CompatibilityLevel
		}
	case keyDeleteSubject:
		var v deleteSubjectValue
		if err := json.Unmarshal(value, &v); err != nil {
			return fmt.Errorf("decode delete-subject value %s: %w", value, err)
		}
		for _, ver := range st.subjects[v.Subject] {
			if ver.version <= v.Version {
				ver.deleted = true
			}
		}
	}
	// Other key types (NOOP, MODE, ...) carry nothing this registry serves.
	return nil
}

// burnIDs makes the next new schema id higher than any in recs, records
// whose write failed. It is the one change not from a written record: a
// restart without them may hand those ids out again, as nothing refers to
// them then.
func (st *state) burnIDs(recs []record) {
	for _, rec := range recs {
		var k storeKey
		var v schemaValue
		if json.Unmarshal(rec.key, &k) == nil && k.KeyType == keySchema && json.Unmarshal(rec.value, &v) == nil {
			st.maxID = max(st.maxID, v.ID)
		}
	}
}

func (st *state) putVersion(v schemaValue) error {
	// Whatever the record holds, its id is taken: handing it out again
	// would give one id two schemas, and consumers would decode old
	// messages with the wrong writer schema.
	st.maxID = max(st.maxID, v.ID)
	s, err := st.schemaOf(v)
	if err != nil {
		// The record replaces whatever its key held, and its version number
		// is taken too: registering that version again would give the key
		// a second record and compaction would drop the first. It is not
		// served, not even by id: a Protobuf or JSON schema would reach
		// clients as if it were Avro, and a text the parser refuses cannot
		// take part in compatibility checks or lookups.
		st.removeVersion(v.Subject, v.Version)
		if st.unreadable[v.Subject] == nil {
			st.unreadable[v.Subject] = make(map[int]bool)
		}
		st.unreadable[v.Subject][v.Version] = true
		return err
	}
	st.forgetUnreadable(v.Subject, v.Version)
	vs := st.subjects[v.Subject]
	nv := &version{subject: v.Subject, version: v.Version, schema: s, deleted: v.Deleted}
	if i, found := findVersionIndex(vs, v.Version); found {
		old := vs[i].schema
		vs[i] = nv
		if old != s {
			// A registration whose write failed but landed, then retried
			// under a new id: the burnt id is gone, as after compaction.
			st.forgetIfUnused(old)
		}
	} else {
		st.subjects[v.Subject] = slices.Insert(vs, i, nv)
	}
	return nil
}

// schemaOf returns the schema of v: the one known by its id, or its text
// parsed and added.
func (st *state) schemaOf(v schemaValue) (*schema, error) {
	if v.SchemaType != "" && v.SchemaType != "AVRO" {
		return nil, fmt.Errorf("subject %s version %d has schema type %s; only AVRO is supported", v.Subject, v.Version, v.SchemaType)
	}
	if s := st.byID[v.ID]; s != nil {
		return s, nil
	}
	p, err := parseSchema(v.Schema)
	if err != nil {
		return nil, fmt.Errorf("parse schema %d: %w", v.ID, err)
	}
	s := &schema{id: v.ID, parsedSchema: p}
	st.byID[v.ID] = s
	if _, ok := st.byCanonical[p.canonical]; !ok {
		st.byCanonical[p.canonical] = s
	}
	return s, nil
}

func (st *state) forgetUnreadable(subject string, ver int) {
	delete(st.unreadable[subject], ver)
	if len(st.unreadable[subject]) == 0 {
		delete(st.unreadable, subject)
	}
}

func (st *state) removeVersion(subject string, ver int) {
	st.forgetUnreadable(subject, ver)
	vs := st.subjects[subject]
	i, found := findVersionIndex(vs, ver)
	if !found {
		return
	}
	gone := vs[i].schema
	vs = slices.Delete(vs, i, i+1)
	if len(vs) == 0 {
		delete(st.subjects, subject)
	} else {
		st.subjects[subject] = vs
	}
	st.forgetIfUnused(gone)
}

// forgetIfUnused removes s if no version uses it any more, as a restart
// after compaction would. Another id of the same schema, the lowest, then
// stands for it, so that registering it elsewhere keeps an id in use.
func (st *state) forgetIfUnused(s *schema) {
	if len(st.usages(s.id, true)) > 0 {
		return
	}
	delete(st.byID, s.id)
	if st.byCanonical[s.canonical] != s {
		return
	}
	delete(st.byCanonical, s.canonical)
	for _, o := range st.byID {
		if known := st.byCanonical[o.canonical]; o.canonical == s.canonical && (known == nil || o.id < known.id) {
			st.byCanonical[o.canonical] = o
		}
	}
}

func findVersionIndex(vs []*version, ver int) (int, bool) {
	return slices.BinarySearchFunc(vs, ver, func(v *version, target int) int { return cmp.Compare(v.version, target) })
}

// versions returns a subject's versions, oldest first, the soft-deleted ones
// only withDeleted.
func (st *state) versions(subject string, withDeleted bool) []*version {
	if withDeleted {
		return st.subjects[subject]
	}
	var live []*version
	for _, v := range st.subjects[subject] {
		if !v.deleted {
			live = append(live, v)
		}
	}
	return live
}

// usages returns the subject-versions that use schema id, by subject.
func (st *state) usages(id int, withDeleted bool) []*version {
	var out []*version
	for _, vs := range st.subjects {
		for _, v := range vs {
			if v.schema.id == id && (withDeleted || !v.deleted) {
				out = append(out, v)
			}
		}
	}
	slices.SortFunc(out, func(a, b *version) int {
		return cmp.Or(cmp.Compare(a.subject, b.subject), cmp.Compare(a.version, b.version))
	})
	return out
}

// versionRef is a version as a URL names it: a number, or the latest.
type versionRef struct {
	number int
	latest bool
}

// findVersion returns the version ref names among the subject's versions;
// "latest" is the newest live one whatever withDeleted says, as
// Confluent's.
func (st *state) findVersion(subject string, ref versionRef, withDeleted bool) (*version, error) {
	vs := st.versions(subject, withDeleted && !ref.latest)
	if len(vs) == 0 {
		return nil, errSubjectNotFound(subject)
	}
	if ref.latest {
		return vs[len(vs)-1], nil
	}
	if i, found := findVersionIndex(vs, ref.number); found {
		return vs[i], nil
	}
	return nil, errVersionNotFound(ref.number)
}

// level returns the compatibility level that applies to subject.
func (st *state) level(subject string) string {
	return cmp.Or(st.levels[subject], st.global, compat.Default)
}

// The methods below plan changes: they check a request against the state
// and return the records that carry it out, without changing anything.

// register returns the id of s in subject and, if s is new there, the
// record that registers it as the subject's next version.
func (st *state) register(subject string, s parsedSchema) (int, []record, error) {
	live := st.versions(subject, false)
	for _, v := range live {
		if v.schema.canonical == s.canonical {
			return v.schema.id, nil, nil
		}
	}
	if problems := incompatibilities(st.level(subject), s.avro, live); len(problems) > 0 {
		return 0, nil, errIncompatible(subject, problems)
	}
	// The same schema gets the same id in every subject, as in Confluent's.
	id, text := st.maxID+1, s.text
	if known, ok := st.byCanonical[s.canonical]; ok {
		id, text = known.id, known.text
	}
	next := 1
	if all := st.subjects[subject]; len(all) > 0 {
		next = all[len(all)-1].version + 1
	}
	for ver := range st.unreadable[subject] {
		next = max(next, ver+1)
	}
	rec, err := newRecord(schemaKey(subject, next), schemaValue{Subject: subject, Version: next, ID: id, Schema: text})
	return id, []record{rec}, err
}

// deleteSubject plans a soft delete of every live version of subject or,
// permanent, the removal of its versions, which must be soft deleted first.
func (st *state) deleteSubject(subject string, permanent bool) ([]int, []record, error) {
	all := st.subjects[subject]
	if len(all) == 0 {
		return nil, nil, errSubjectNotFound(subject)
	}
	deleted := []int{}
	var recs []record
	for _, v := range all {
		if permanent && !v.deleted {
			return nil, nil, errSubjectNotSoftDeleted(subject)
		}
		if !permanent && v.deleted {
			continue
		}
		rec, err := v.deleteRecord(permanent)
		if err != nil {
			return nil, nil, err
		}
		recs = append(recs, rec)
		deleted = append(deleted, v.version)
	}
	if len(recs) == 0 {
		return nil, nil, errSubjectSoftDeleted(subject)
	}
	if permanent {
		rec, err := st.forgetLevel(subject)
		if err != nil {
			return nil, nil, err
		}
		recs = append(recs, rec...)
	}
	return deleted, recs, nil
}

// forgetLevel plans removing the level of a subject deleted for good, as
// Confluent's does: one made again under its name starts at the global
// level.
func (st *state) forgetLevel(subject string) ([]record, error) {
	if _, ok := st.levels[subject]; !ok {
		return nil, nil
	}
	rec, err := newRecord(configKey(&subject), nil)
	return []record{rec}, err
}

// deleteVersion plans a soft delete of one version or, permanent, its
// removal, which needs a soft delete first.
func (st *state) deleteVersion(subject string, ref versionRef, permanent bool) (int, []record, error) {
	v, err := st.findVersion(subject, ref, permanent || !ref.latest)
	if err != nil {
		return 0, nil, err
	}
	switch {
	case permanent && !v.deleted:
		return 0, nil, errVersionNotSoftDeleted(subject, v.version)
	case !permanent && v.deleted:
		return 0, nil, errVersionSoftDeleted(subject, v.version)
	}
	rec, err := v.deleteRecord(permanent)
	if err != nil || !permanent || len(st.subjects[subject]) > 1 {
		return v.version, []record{rec}, err
	}
	level, err := st.forgetLevel(subject) // its last version
	return v.version, append([]record{rec}, level...), err
}

func (v *version) deleteRecord(permanent bool) (record, error) {
	key := schemaKey(v.subject, v.version)
	if permanent {
		return newRecord(key, nil)
	}
	return newRecord(key, schemaValue{Subject: v.subject, Version: v.version, ID: v.schema.id, Schema: v.schema.text, Deleted: true})
}

// setLevel plans setting the compatibility level of subject, or the global
// one when subject is nil.
func (st *state) setLevel(subject *string, level string) ([]record, error) {
	if !compat.ValidLevel(level) {
		return nil, errInvalidLevel(level)
	}
	rec, err := newRecord(configKey(subject), configValue{CompatibilityLevel: level})
	return []record{rec}, err
}

// deleteLevel plans removing the level of subject, or resetting the global
// one when subject is nil, and returns the level it had.
func (st *state) deleteLevel(subject *string) (string, []record, error) {
	old := cmp.Or(st.global, compat.Default)
	if subject != nil {
		var ok bool
		if old, ok = st.levels[*subject]; !ok { // as Confluent's, 40401 where a read answers 40408
			return "", nil, errSubjectNotFound(*subject)
		}
	}
	rec, err := newRecord(configKey(subject), nil)
	return old, []record{rec}, err
}
