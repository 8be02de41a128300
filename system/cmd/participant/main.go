// Command participant writes a new saga participant from templates/:
//
//	go run ./system/cmd/participant -name inventory   (make participant NAME=inventory)
//
// It writes services/<name> (main, service wiring, domain with its test,
// app, adapters, ports, go.mod), the schemas of its commands, replies and
// state record in contracts/schemas, and inserts, each before its anchor
// line (a comment "make participant adds ... above"), its topics and topic
// specs (contracts/topics.go), its interactions (contracts/interactions.go),
// its Config field (system/system.go), its row of system.Processes
// (system/processes.go) and its two instances in docker-compose.yml; the
// import of its service package goes into the import block of the Go files,
// found with go/parser. Then it runs the go commands that finish the job:
// go work use, go mod edit and go mod tidy, and contracts' go generate (make
// contracts).
//
// A name that is no lowercase Go package name, or that is taken, is refused
// before anything is written.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	name := flag.String("name", "", "the participant's name: a lowercase Go package name, e.g. inventory")
	root := flag.String("root", ".", "the repository's root, where go.work is")
	flag.Parse()
	// An interrupt ends the go commands under way, and run puts the
	// files back.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *root, *name, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "participant:", err)
		os.Exit(1)
	}
}
