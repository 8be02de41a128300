// Package contracts holds what the services and the orchestrator agree on: the
// Avro schemas of every command, reply, event and state record (schemas/), the
// Go types generated from them, the interactions of the sagas
// (interactions.go), and the names of topics and headers.
package contracts

//go:generate env LC_ALL=C sh -c "go tool avrogen -pkg contracts -o types_gen.go -encoders -fullschema -tags json:camel schemas/*.avsc"
//go:generate go run github.com/kafkasaga/kafkasaga/saga/cmd/interactions -o interactions_gen.go interactions.go
