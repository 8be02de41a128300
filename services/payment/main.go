// Command payment runs the payment service: GET /payments/{orderId} and
// the AuthorizePayment / CancelPayment commands of the Create Order saga and
// the RefundPayment / CancelRefund commands of the Cancel Order saga.
// Configuration comes from the environment: see docs/operations.md.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/kafkasaga/kafkasaga/platform/process"
	"github.com/kafkasaga/kafkasaga/services/payment/service"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := process.RunFromEnv(ctx, "payment", service.New); err != nil {
		fmt.Fprintln(os.Stderr, "payment:", err)
		os.Exit(1)
	}
}
