// Command customer runs the customer service: customers, their credit, the
// ReserveCredit / ReleaseCredit commands of the Create Order saga, and the
// ReleaseCredit command of the Cancel Order saga.
// Configuration comes from the environment: see docs/operations.md.
package main

import (
	"github.com/kafkasaga/kafkasaga/platform/process"
	"github.com/kafkasaga/kafkasaga/services/customer/service"
)

func main() { process.Main("customer", service.New) }
