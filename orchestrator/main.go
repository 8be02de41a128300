// Command orchestrator runs the saga orchestrator: it starts a Create Order
// saga for every new order and a Cancel Order saga for every cancellation
// accepted, drives them to their end and serves GET /sagas/{id}.
// Configuration comes from the environment: see docs/operations.md.
package main

import (
	"github.com/kafkasaga/kafkasaga/orchestrator/service"
	"github.com/kafkasaga/kafkasaga/platform/process"
)

func main() { process.Main("orchestrator", service.New) }
