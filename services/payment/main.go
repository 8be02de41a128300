// Command payment runs the payment service: GET /payments/{orderId} and
// the AuthorizePayment / CancelPayment commands of the Create Order saga and
// the RefundPayment / CancelRefund commands of the Cancel Order saga.
// Configuration comes from the environment: see docs/operations.md.
package main

import (
	"github.com/kafkasaga/kafkasaga/platform/process"
	"github.com/kafkasaga/kafkasaga/services/payment/service"
)

func main() { process.Main("payment", service.New) }
