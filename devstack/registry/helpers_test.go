package registry_test

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/riferrei/srclient"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/sr"

	"github.com/kafkasaga/kafkasaga/devstack/registry"
)

// newCluster starts a one-broker kfake cluster on a free port.
func newCluster(t *testing.T) []string {
	t.Helper()
	return newKfake(t).ListenAddrs()
}

// newKfake is newCluster for a test that injects faults.
func newKfake(t *testing.T) *kfake.Cluster {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatalf("start kfake: %v", err)
	}
	t.Cleanup(c.Close)
	return c
}

// startRegistry starts a registry on brokers and a free port; stop (also
// run on cleanup) shuts it down and waits for it.
func startRegistry(t *testing.T, brokers []string) (url string, stop func()) {
	t.Helper()
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	reg, err := registry.New(t.Context(), registry.Config{Brokers: brokers}, logger)
	if err != nil {
		t.Fatalf("start registry: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		reg.Close()
		t.Fatalf("listen: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- reg.Serve(ctx, ln) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("serve: %v", err)
			}
			reg.Close()
		})
	}
	t.Cleanup(stop)
	return "http://" + ln.Addr().String(), stop
}

// newHTTPClient returns a client whose idle connections close before the
// registry stops, so that its shutdown need not wait for them.
func newHTTPClient(t *testing.T) *http.Client {
	t.Helper()
	c := &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone(), Timeout: 10 * time.Second}
	t.Cleanup(c.CloseIdleConnections)
	return c
}

// record builds a one-line Avro record schema test.Rec with the given fields.
func record(fields ...string) string {
	return `{"type":"record","name":"Rec","namespace":"test","fields":[` + strings.Join(fields, ",") + `]}`
}

const (
	fieldID        = `{"name":"id","type":"string"}`
	fieldIDInt     = `{"name":"id","type":"int"}`
	fieldN         = `{"name":"n","type":"int"}`
	fieldNDefault  = `{"name":"n","type":"int","default":0}`
	fieldNLong     = `{"name":"n","type":"long"}`
	fieldNString   = `{"name":"n","type":"string","default":""}`
	otherSchemaDef = `{"type":"record","name":"Other","namespace":"test","fields":[{"name":"x","type":"boolean"}]}`
)

// errorCode returns the Confluent error_code that either client reports.
func errorCode(err error) int {
	var se srclient.Error
	if errors.As(err, &se) {
		return se.Code
	}
	var re *sr.ResponseError
	if errors.As(err, &re) {
		return re.ErrorCode
	}
	return 0
}
