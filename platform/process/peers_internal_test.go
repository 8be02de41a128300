package process

import (
	"context"
	"errors"
	"net"
	"syscall"
	"testing"
	"time"
)

// A peer is gone when its port refuses connections, or when its name no
// longer resolves, as a stopped container's or pod's does: not when the
// dial timed out or the resolver did not answer.
func TestGone(t *testing.T) {
	for _, c := range []struct {
		name string
		err  error
		want bool
	}{
		{"refused", &net.OpError{Op: "dial", Err: &net.OpError{Err: syscall.ECONNREFUSED}}, true},
		{"no such host", &net.OpError{Op: "dial", Err: &net.DNSError{Err: "no such host", Name: "order-2", IsNotFound: true}}, true},
		{"resolver timed out", &net.OpError{Op: "dial", Err: &net.DNSError{Err: "i/o timeout", Name: "order-2", IsTimeout: true}}, false},
		{"resolver failed", &net.OpError{Op: "dial", Err: &net.DNSError{Err: "server misbehaving", Name: "order-2", IsTemporary: true}}, false},
		{"dial timed out", &net.OpError{Op: "dial", Err: context.DeadlineExceeded}, false},
		{"unreachable", &net.OpError{Op: "dial", Err: syscall.EHOSTUNREACH}, false},
		{"other", errors.New("x"), false},
	} {
		if got := gone(c.err); got != c.want {
			t.Errorf("%s: gone = %v, want %v", c.name, got, c.want)
		}
	}
	// And through a real dial: a port nothing listens on.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	if _, err := net.DialTimeout("tcp", addr, time.Second); !gone(err) {
		t.Errorf("a closed port: gone(%v) = false", err)
	}
}
