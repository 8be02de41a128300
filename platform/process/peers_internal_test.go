package process

import (
	"context"
	"errors"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"
)

// A dial's error says a peer's address is gone when its port refused the
// connection; not when the dial timed out, or the name did not resolve
// (Kubernetes drops a live pod's name while it fails its readiness
// probe).
func TestReachOf(t *testing.T) {
	for _, c := range []struct {
		name string
		err  error
		want reach
	}{
		{"refused", &net.OpError{Op: "dial", Err: &net.OpError{Err: syscall.ECONNREFUSED}}, reachRefused},
		{"no such host", &net.OpError{Op: "dial", Err: &net.DNSError{Err: "no such host", Name: "order-2", IsNotFound: true}}, reachUnknown},
		{"resolver timed out", &net.OpError{Op: "dial", Err: &net.DNSError{Err: "i/o timeout", Name: "order-2", IsTimeout: true}}, reachUnknown},
		{"resolver failed", &net.OpError{Op: "dial", Err: &net.DNSError{Err: "server misbehaving", Name: "order-2", IsTemporary: true}}, reachUnknown},
		{"dial timed out", &net.OpError{Op: "dial", Err: context.DeadlineExceeded}, reachUnknown},
		{"unreachable", &net.OpError{Op: "dial", Err: syscall.EHOSTUNREACH}, reachUnknown},
		{"other", errors.New("x"), reachUnknown},
	} {
		if got := reachOf(c.err); got != c.want {
			t.Errorf("%s: reachOf = %v, want %v", c.name, got, c.want)
		}
	}
	// Through real dials: a listener, then the same port closed.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	if got := probe(addr); got != reachUp {
		t.Errorf("a listener: probe = %v, want up", got)
	}
	l.Close()
	if _, err := net.DialTimeout("tcp", addr, time.Second); reachOf(err) != reachRefused {
		t.Errorf("a closed port: reachOf(%v) is not refused", err)
	}
}

// A peer is certainly dead when two looks in a row find its port
// refusing connections.
func TestPeersAreDeadWhenTheirPortRefusesTwice(t *testing.T) {
	for _, c := range []struct {
		name  string
		looks []reach
		dead  bool // after the last look
	}{
		{"refused twice", []reach{reachRefused, reachRefused}, true},
		{"refused once", []reach{reachUp, reachRefused}, false},
		{"refused, then up, then refused", []reach{reachRefused, reachUp, reachRefused}, false},
		{"refused, then a timeout, then refused", []reach{reachRefused, reachUnknown, reachRefused}, false},
		{"timeouts", []reach{reachUp, reachUnknown, reachUnknown, reachUnknown}, false},
	} {
		w := newPeers()
		var dead, suspect bool
		for i, r := range c.looks {
			dead, suspect = w.saw("m", r)
			if dead && i < len(c.looks)-1 {
				t.Errorf("%s: dead after look %d of %d", c.name, i+1, len(c.looks))
			}
		}
		if dead != c.dead {
			t.Errorf("%s: dead = %v, want %v", c.name, dead, c.dead)
		}
		if dead && suspect {
			t.Errorf("%s: both dead and suspect", c.name)
		}
	}
	// What is remembered of a member that left is dropped.
	w := newPeers()
	w.saw("m", reachRefused)
	w.forget("m")
	if dead, _ := w.saw("m", reachRefused); dead {
		t.Errorf("after forget: dead after one refusal, refused %v", w.refused)
	}
}

// An instance that evicts a dead predecessor at its own address once it
// has joined does not take its transactional ids: they are its own, and
// taking them again would fence its own producers and abort what it has
// open. Before it joins, and for a dead peer elsewhere, the ids are
// taken, to abort what the dead one left open.
func TestAnEvictionFencesNoOwnProducer(t *testing.T) {
	p := &Process{advertised: "order-1:8081"}
	p.cfg.Name = "order"
	if ids := p.toFence("order-1:8081", true); len(ids) != 0 {
		t.Errorf("a predecessor at its own address, once joined: fences %v, want none", ids)
	}
	if ids := p.toFence("order-1:8081", false); len(ids) != 2 {
		t.Errorf("a predecessor at its own address, before joining: fences %v, want its two ids", ids)
	}
	if ids := p.toFence("order-2:8081", true); len(ids) != 2 {
		t.Errorf("a peer elsewhere: fences %v, want its two ids", ids)
	}
}

// A configured advertised address is one the others can dial as it is:
// a host and a port, no scheme; one that is not failed no start, and the
// keys of the instance's partitions answered 503 through every other.
func TestAdvertisedAddr(t *testing.T) {
	for _, bad := range []string{"http://127.0.0.1:8082", "customer-1", "127.0.0.1:notaport", "127.0.0.1:0", "127.0.0.1:70000", ":8082", "0.0.0.0:8082"} {
		if got, err := advertisedAddr(bad, ":8082"); err == nil || !strings.Contains(err.Error(), "ADVERTISED_HTTP_ADDR") {
			t.Errorf("ADVERTISED_HTTP_ADDR=%s: got %q, %v; want an error naming the variable", bad, got, err)
		}
	}
	for _, good := range []string{"customer-1:8082", "10.0.0.7:8082", "[::1]:8082"} {
		if got, err := advertisedAddr(good, ":8082"); err != nil || got != good {
			t.Errorf("ADVERTISED_HTTP_ADDR=%s: got %q, %v; want it as it is", good, got, err)
		}
	}
}
