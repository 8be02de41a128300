package registry

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/hamba/avro/v2"
)

// parsedSchema is a schema as a client sent it, with the parsed form the
// compatibility checks need and the canonical text that decides identity.
type parsedSchema struct {
	text string
	// canonical is hamba's full JSON form of the schema: key order and
	// whitespace no longer matter, but defaults, docs and logical types
	// still do. Parsing Canonical Form would drop defaults, so adding a
	// default to a field would silently return the old id and the old text,
	// and later compatibility checks would run against the wrong schema.
	canonical string
	avro      avro.Schema
}

func parseSchema(text string) (parsedSchema, error) {
	if strings.TrimSpace(text) == "" {
		return parsedSchema{}, errors.New("the schema is empty")
	}
	if !json.Valid([]byte(text)) {
		return parsedSchema{}, errors.New("the schema is not valid JSON")
	}
	// A cache per parse: hamba's default cache is process-wide, and with it a
	// schema could use a named type that only some other schema defines.
	s, err := avro.ParseWithCache(text, "", &avro.SchemaCache{})
	if err != nil {
		return parsedSchema{}, err
	}
	canonical, err := json.Marshal(s)
	if err != nil {
		return parsedSchema{}, fmt.Errorf("canonical form: %w", err)
	}
	return parsedSchema{text: text, canonical: string(canonical), avro: s}, nil
}

// Compatibility levels, as Confluent names them.
const (
	levelNone     = "NONE"
	defaultLevel  = "BACKWARD"
	transitiveSfx = "_TRANSITIVE"
)

func validLevel(level string) bool {
	switch level {
	case "NONE", "BACKWARD", "FORWARD", "FULL", "BACKWARD_TRANSITIVE", "FORWARD_TRANSITIVE", "FULL_TRANSITIVE":
		return true
	}
	return false
}

// incompatibilities checks candidate against previous (oldest first) under
// level and describes every problem; none means compatible. BACKWARD: the
// candidate can read what the previous schema wrote; FORWARD: the previous
// schema can read what the candidate writes; FULL: both. Without
// _TRANSITIVE only the latest previous schema counts.
func incompatibilities(level string, candidate avro.Schema, previous []*version) []string {
	if level == levelNone || len(previous) == 0 {
		return nil
	}
	if !strings.HasSuffix(level, transitiveSfx) {
		previous = previous[len(previous)-1:]
	}
	base := strings.TrimSuffix(level, transitiveSfx)
	backward := base == "BACKWARD" || base == "FULL"
	forward := base == "FORWARD" || base == "FULL"
	var problems []string
	for _, old := range previous {
		if backward {
			if err := compatible(candidate, old.schema.avro); err != nil {
				problems = append(problems, fmt.Sprintf("the new schema cannot read data written with version %d: %v", old.version, err))
			}
		}
		if forward {
			if err := compatible(old.schema.avro, candidate); err != nil {
				problems = append(problems, fmt.Sprintf("version %d cannot read data written with the new schema: %v", old.version, err))
			}
		}
	}
	return problems
}

// compatible uses a fresh checker for every pair: avro.SchemaCompatibility
// caches its verdicts by Parsing Canonical Form, which ignores defaults, so a
// shared checker would reuse the verdict for a schema differing only there.
func compatible(reader, writer avro.Schema) error {
	return avro.NewSchemaCompatibility().Compatible(reader, writer)
}
