package saga

// The engine's own record; the records its tests exchange, and their interactions.
//go:generate env LC_ALL=C sh -c "go tool avrogen -pkg saga -o types_gen.go -encoders -fullschema -tags json:camel schemas/*.avsc"
//go:generate env LC_ALL=C sh -c "go tool avrogen -pkg saga_test -o records_test.go -encoders -fullschema -tags json:camel testdata/*.avsc"
//go:generate go run ./cmd/interactions -o interactions_gen_test.go interactions_test.go
