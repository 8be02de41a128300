// Command order runs the order service: POST /orders, GET /orders/{id},
// POST /orders/{id}/cancel, the ApproveOrder / RejectOrder commands of the
// Create Order saga and the CancelOrder / RefuseCancel commands of the
// Cancel Order saga.
// Configuration comes from the environment: see docs/operations.md.
package main

import (
	"github.com/kafkasaga/kafkasaga/platform/process"
	"github.com/kafkasaga/kafkasaga/services/order/service"
)

func main() { process.Main("order", service.New) }
