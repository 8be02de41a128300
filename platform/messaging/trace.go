package messaging

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"regexp"
)

type traceparentKey struct{}

// validTraceparent matches a W3C traceparent of version 00.
var validTraceparent = regexp.MustCompile(`^00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$`)

// WithTraceparent returns ctx carrying the W3C traceparent tp if it is valid,
// or a new one otherwise. HTTP ports call it with the request's header, so a
// saga continues the caller's trace.
func WithTraceparent(ctx context.Context, tp string) context.Context {
	if !validTraceparent.MatchString(tp) {
		tp = NewTraceparent()
	}
	return context.WithValue(ctx, traceparentKey{}, tp)
}

// TraceparentFrom returns the traceparent ctx carries, or a new one.
func TraceparentFrom(ctx context.Context) string {
	if tp, ok := ctx.Value(traceparentKey{}).(string); ok {
		return tp
	}
	return NewTraceparent()
}

// NewTraceparent starts a new sampled trace.
func NewTraceparent() string {
	var b [24]byte
	_, _ = rand.Read(b[:])
	return "00-" + hex.EncodeToString(b[:16]) + "-" + hex.EncodeToString(b[16:]) + "-01"
}
