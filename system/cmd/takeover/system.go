package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kafkasaga/kafkasaga/platform/config"
	"github.com/kafkasaga/kafkasaga/platform/process"
	kafkasaga "github.com/kafkasaga/kafkasaga/system"
	"github.com/kafkasaga/kafkasaga/system/internal/load"
)

// processes are the system's processes (kafkasaga.Processes), each its own
// consumer group and binary.
var processes = kafkasaga.Names()

// system is devstack (the embedded broker and registry) and two instances
// of each process, every one an OS process of its binary.
type system struct {
	kafka     config.Kafka
	devstack  *proc
	instances map[string][]*proc // by process
	admin     *kadm.Client
	client    *http.Client
	logs      string
	state     string // every instance's STATE_DIR, removed by close
}

// startSystem starts devstack, then n instances of each process with the
// given session timeout, and waits until every group is stable with all
// of them.
func startSystem(ctx context.Context, cfg Config, session time.Duration) (*system, error) {
	addrs, err := load.FreeAddrs(2 + len(processes)*cfg.Instances)
	if err != nil {
		return nil, err
	}
	s := &system{instances: map[string][]*proc{}, client: &http.Client{Timeout: 10 * time.Second}, logs: cfg.Logs}
	// A killed instance leaves its local state behind: all of it goes at the end.
	if s.state, err = os.MkdirTemp("", "takeover-state-"); err != nil {
		return nil, err
	}
	s.kafka = config.Kafka{Brokers: []string{addrs[0]}, SchemaRegistryURL: "http://" + addrs[1]}
	devEnv := []string{"DEVSTACK_KAFKA_ADDR=" + addrs[0], "DEVSTACK_REGISTRY_ADDR=" + addrs[1], "PATH=" + os.Getenv("PATH")}
	if cfg.Brokers != "" {
		s.kafka.Brokers = strings.Split(cfg.Brokers, ",")
		devEnv = []string{"DEVSTACK_KAFKA_BROKERS=" + cfg.Brokers, "DEVSTACK_REGISTRY_ADDR=" + addrs[1], "PATH=" + os.Getenv("PATH")}
	}
	bin, err := binary(cfg.Bin, "devstack")
	if err != nil {
		return nil, err
	}
	s.devstack = &proc{name: "devstack", bin: bin, log: filepath.Join(cfg.Logs, "devstack.log"), env: devEnv}
	if err := s.devstack.start(); err != nil {
		return nil, err
	}
	err = s.devstack.awaitReady(ctx, time.Minute, func() error {
		if err := getOK(ctx, s.client, s.kafka.SchemaRegistryURL+"/subjects"); err != nil {
			return err
		}
		conn, err := net.DialTimeout("tcp", s.kafka.Brokers[0], time.Second)
		if err != nil {
			return err
		}
		return conn.Close()
	})
	if err != nil {
		s.close()
		return nil, err
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(s.kafka.Brokers...))
	if err != nil {
		s.close()
		return nil, err
	}
	s.admin = kadm.NewClient(cl)

	for i, p := range kafkasaga.Processes {
		name := p.Name
		bin, err := binary(cfg.Bin, filepath.Base(p.Main))
		if err != nil {
			s.close()
			return nil, err
		}
		for j := range cfg.Instances {
			addr := addrs[2+i*cfg.Instances+j]
			instance := fmt.Sprintf("%s-%d", name, j+1)
			s.instances[name] = append(s.instances[name], &proc{
				name: instance, bin: bin, base: "http://" + addr, log: filepath.Join(cfg.Logs, instance+".log"),
				env: []string{
					"KAFKA_BROKERS=" + strings.Join(s.kafka.Brokers, ","), "SCHEMA_REGISTRY_URL=" + s.kafka.SchemaRegistryURL,
					"HTTP_ADDR=" + addr, "ADVERTISED_HTTP_ADDR=" + addr, "LOG_LEVEL=info", "STATE_DIR=" + s.state,
				},
			})
		}
	}
	if err := s.startInstances(ctx, session); err != nil {
		s.close()
		return nil, err
	}
	return s, nil
}

// all returns every instance.
func (s *system) all() []*proc {
	var all []*proc
	for _, name := range processes {
		all = append(all, s.instances[name]...)
	}
	return all
}

// startInstances starts every instance with the session timeout and waits
// until all are ready and every group is stable with all of them.
func (s *system) startInstances(ctx context.Context, session time.Duration) error {
	for _, p := range s.all() {
		if err := p.start("KAFKA_SESSION_TIMEOUT=" + session.String()); err != nil {
			return err
		}
	}
	for _, p := range s.all() {
		if err := s.awaitReady(ctx, p); err != nil {
			return err
		}
	}
	for _, name := range processes {
		if err := s.awaitMembers(ctx, name, len(s.instances[name])); err != nil {
			return err
		}
	}
	return nil
}

// restartInstances stops every instance (SIGTERM) and starts them again
// with another session timeout.
func (s *system) restartInstances(ctx context.Context, session time.Duration) error {
	for _, p := range s.all() {
		if err := p.stop(); err != nil {
			return err
		}
	}
	return s.startInstances(ctx, session)
}

func (s *system) awaitReady(ctx context.Context, p *proc) error {
	return p.awaitReady(ctx, 5*time.Minute, func() error { return getOK(ctx, s.client, p.base+"/readyz") })
}

// awaitMembers waits until the group is stable with n members.
func (s *system) awaitMembers(ctx context.Context, group string, n int) error {
	return poll(ctx, 5*time.Minute, func() error {
		g, err := s.describe(ctx, group)
		if err != nil {
			return err
		}
		if g.State != "Stable" || len(g.Members) != n {
			return fmt.Errorf("group %s: %s with %d members, want Stable with %d", group, g.State, len(g.Members), n)
		}
		return nil
	})
}

func (s *system) describe(ctx context.Context, group string) (kadm.DescribedGroup, error) {
	groups, err := s.admin.DescribeGroups(ctx, group)
	if err != nil {
		return kadm.DescribedGroup{}, err
	}
	g, ok := groups[group]
	if !ok {
		return g, fmt.Errorf("group %s not described", group)
	}
	return g, g.Err
}

// owned returns the partitions the instance advertising addr holds in the
// group's current assignment.
func owned(g kadm.DescribedGroup, addr string) []int32 {
	for _, m := range g.Members {
		meta, ok := m.Join.AsConsumer()
		if !ok || process.AdvertisedAddr(string(meta.UserData)) != addr {
			continue
		}
		a, ok := m.Assigned.AsConsumer()
		if !ok || len(a.Topics) == 0 {
			return nil
		}
		return a.Topics[0].Partitions // the same numbers of every topic (the copartitioned assignor)
	}
	return nil
}

// hasMember says whether an instance advertising addr is in the group.
func hasMember(g kadm.DescribedGroup, addr string) bool {
	for _, m := range g.Members {
		if meta, ok := m.Join.AsConsumer(); ok && process.AdvertisedAddr(string(meta.UserData)) == addr {
			return true
		}
	}
	return false
}

func (s *system) close() {
	for _, p := range s.all() {
		p.killQuietly()
	}
	if s.admin != nil {
		s.admin.Close()
	}
	if s.devstack != nil {
		_ = s.devstack.stop()
		s.devstack.killQuietly()
	}
	os.RemoveAll(s.state)
}

// memory is what an instance holds: its resident set (VmRSS) and the Go
// heap in use (go_memstats_heap_inuse_bytes on /metrics).
type memory struct {
	RSS, Heap int64 // bytes
}

func (s *system) memory(ctx context.Context, p *proc) (memory, error) {
	rss, err := vmRSS(p.pid())
	if err != nil {
		return memory{}, err
	}
	heap, err := s.metric(ctx, p, "go_memstats_heap_inuse_bytes")
	if err != nil {
		return memory{}, err
	}
	return memory{RSS: rss, Heap: int64(heap)}, nil
}

// vmRSS reads the resident set of a process from /proc, in bytes.
func vmRSS(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, fmt.Errorf("memory of process %d: %w", pid, err)
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("process %d: no VmRSS in /proc/%d/status", pid, pid)
}

// metric reads a gauge from the instance's /metrics.
func (s *system) metric(ctx context.Context, p *proc, name string) (float64, error) {
	families, err := load.Metrics(ctx, s.client, p.base)
	if err != nil {
		return 0, err
	}
	if families[name] == nil {
		return 0, fmt.Errorf("%s/metrics has no %s", p.base, name)
	}
	return load.Total(families, name), nil
}

// get returns the status and body of GET url.
func get(ctx context.Context, client *http.Client, url string) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, body, err
}
