package registry

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/hamba/avro/v2"

	"github.com/kafkasaga/kafkasaga/devstack/registry/compat"
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
	s, err := compat.Parse(text)
	if err != nil {
		return parsedSchema{}, err
	}
	canonical, err := json.Marshal(s)
	if err != nil {
		return parsedSchema{}, fmt.Errorf("canonical form: %w", err)
	}
	return parsedSchema{text: text, canonical: string(canonical), avro: s}, nil
}

// incompatibilities checks candidate against previous (oldest first) under
// level, with the checker schemas-check uses too, and describes every
// problem; none means compatible.
func incompatibilities(level string, candidate avro.Schema, previous []*version) []string {
	vs := make([]compat.Version, len(previous))
	for i, v := range previous {
		vs[i] = compat.Version{Number: v.version, Schema: v.schema.avro}
	}
	var problems []string
	for _, p := range compat.Check(level, candidate, vs) {
		problems = append(problems, p.Error())
	}
	return problems
}
