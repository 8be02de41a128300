package saga

// The engine's own record, and the records its tests exchange.
//go:generate sh -c "go tool avrogen -pkg saga -o types_gen.go -encoders -fullschema -tags json:camel schemas/*.avsc"
//go:generate sh -c "go tool avrogen -pkg saga_test -o records_test.go -encoders -fullschema -tags json:camel testdata/*.avsc"
