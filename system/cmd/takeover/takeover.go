package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"time"

	"github.com/kafkasaga/kafkasaga/platform/store"
)

// probe is a key of one partition and the answer its GET must give.
type probe struct {
	partition int32
	path      string // e.g. /orders/{id}
	want      string // the JSON answer, re-encoded so that answers compare as values
}

// takeover is what the kill of one instance cost its process.
type takeover struct {
	Process    string        `json:"process"`
	Session    time.Duration `json:"session_timeout_ns"`
	Partitions int           `json:"partitions"` // the killed instance held
	Detection  time.Duration `json:"detection_ns"`
	Handover   time.Duration `json:"handover_ns"`
	// Rebalance is the part of the handover until the group was Stable
	// again with the survivor alone; the rest is the survivor's restore and
	// its first answers.
	Rebalance time.Duration `json:"rebalance_ns"`
	Total     time.Duration `json:"total_ns"`
	Restore   time.Duration `json:"restore_ns"` // the survivor's restore of the session, from its log
	After     memory        `json:"survivor_after"`
}

// expect sets, for the probes of the process's partitions, the answer
// each gives now (through the first instance, which forwards to the owner).
func (s *system) expect(ctx context.Context, name string, probes []probe) error {
	for i, p := range probes {
		var want string
		err := poll(ctx, 30*time.Second, func() error {
			var err error
			want, err = s.answer(ctx, s.instances[name][0], p.path)
			return err
		})
		if err != nil {
			return err
		}
		probes[i].want = want
	}
	return nil
}

// answer returns the re-encoded body of a 200 to GET path on p.
func (s *system) answer(ctx context.Context, p *proc, path string) (string, error) {
	status, body, err := get(ctx, s.client, p.base+path)
	if err != nil {
		return "", err
	}
	if status != http.StatusOK {
		return "", fmt.Errorf("GET %s%s: %d %s", p.base, path, status, bytes.TrimSpace(body))
	}
	var v any
	if err := json.Unmarshal(body, &v); err != nil {
		return "", fmt.Errorf("GET %s%s: %w", p.base, path, err)
	}
	b, err := json.Marshal(v)
	return string(b), err
}

// caughtUp is how many records the survivor's standby replicas may lag
// behind when the kill comes: a few transactions' worth.
const caughtUp = 100

// measureTakeover SIGKILLs the last instance of the process and measures
// how long the first takes to answer for every partition the killed one
// held: detection (the group leaves Stable or drops the member, as the
// broker sees the session expire) and handover (from then until every
// such partition answers GET by key on the survivor with the answer it
// gave before). Then it starts the killed instance again, with the same
// session timeout, and waits until the group holds both.
func (s *system) measureTakeover(ctx context.Context, name string, probes []probe, session time.Duration) (takeover, error) {
	r := takeover{Process: name, Session: session}
	insts := s.instances[name]
	survivor, victim := insts[0], insts[len(insts)-1]
	victimAddr := victim.base[len("http://"):]
	g, err := s.describe(ctx, name)
	if err != nil {
		return r, err
	}
	parts := owned(g, victimAddr)
	if len(parts) == 0 {
		return r, fmt.Errorf("%s holds no partition of %s: %s with %d members", victim.name, name, g.State, len(g.Members))
	}
	var pending []probe
	for _, p := range probes {
		if slices.Contains(parts, p.partition) {
			pending = append(pending, p)
		}
	}
	if len(pending) != len(parts) {
		return r, fmt.Errorf("%s: %d probes for the %d partitions %v of %s", name, len(pending), len(parts), parts, victim.name)
	}
	if err := s.expect(ctx, name, pending); err != nil {
		return r, err
	}
	r.Partitions = len(parts)
	// An instance dies long after it started, as a rule: its partitions'
	// standby replicas on the survivor have caught up by then.
	err = poll(ctx, 5*time.Minute, func() error {
		lag, err := s.metric(ctx, survivor, "standby_lag_records")
		if err != nil {
			return err
		}
		if lag < 0 || lag > caughtUp {
			return fmt.Errorf("%s: standby replicas %v records behind", survivor.name, lag)
		}
		return nil
	})
	if err != nil {
		return r, err
	}
	logFrom := survivor.logSize()

	killed, err := victim.kill()
	if err != nil {
		return r, err
	}
	detected, stable := make(chan time.Time, 1), make(chan time.Time, 1)
	dctx, stopDetect := context.WithCancel(ctx)
	defer stopDetect()
	go func() {
		err := poll(dctx, 5*time.Minute, func() error {
			g, err := s.describe(dctx, name)
			if err != nil {
				return err
			}
			if g.State == "Stable" && hasMember(g, victimAddr) {
				return fmt.Errorf("%s still in the group", victim.name)
			}
			detected <- time.Now()
			return nil
		})
		if err != nil {
			return
		}
		_ = poll(dctx, 5*time.Minute, func() error {
			g, err := s.describe(dctx, name)
			if err != nil {
				return err
			}
			if g.State != "Stable" || len(g.Members) != len(insts)-1 {
				return fmt.Errorf("group %s: %s with %d members", name, g.State, len(g.Members))
			}
			stable <- time.Now()
			return nil
		})
	}()
	err = poll(ctx, 5*time.Minute, func() error {
		for i := 0; i < len(pending); {
			got, err := s.answer(ctx, survivor, pending[i].path)
			if err != nil {
				return err
			}
			if got != pending[i].want {
				return errStop{fmt.Errorf("GET %s on %s after the takeover: got %s, want %s", pending[i].path, survivor.name, got, pending[i].want)}
			}
			pending = slices.Delete(pending, i, i+1)
		}
		return nil
	})
	answered := time.Now()
	if err != nil {
		return r, fmt.Errorf("%s after %s was killed: %w", survivor.name, victim.name, err)
	}
	var detectedAt time.Time
	select {
	case detectedAt = <-detected:
	case <-time.After(10 * time.Second):
		return r, fmt.Errorf("%s answered for %s's partitions, but the group was never seen to leave Stable", survivor.name, victim.name)
	}
	var stableAt time.Time
	select {
	case stableAt = <-stable:
	case <-time.After(10 * time.Second):
		return r, fmt.Errorf("%s answered for %s's partitions, but the group was never seen Stable without it", survivor.name, victim.name)
	}
	r.Detection, r.Total, r.Rebalance = detectedAt.Sub(killed), answered.Sub(killed), stableAt.Sub(detectedAt)
	r.Handover = r.Total - r.Detection
	r.Restore = restoreTook(survivor.logSince(logFrom))
	if r.After, err = s.memory(ctx, survivor); err != nil {
		return r, err
	}
	if err := s.awaitMembers(ctx, name, 1); err != nil {
		return r, err
	}

	if err := victim.start("KAFKA_SESSION_TIMEOUT=" + session.String()); err != nil {
		return r, err
	}
	if err := s.awaitReady(ctx, victim); err != nil {
		return r, err
	}
	return r, s.awaitMembers(ctx, name, len(insts))
}

// assignedTook matches the survivor's log line of a session's restore
// (platform/process: "partitions assigned", with took=).
var assignedTook = regexp.MustCompile(`msg="partitions assigned".* took=(\S+)`)

// restoreTook sums the restores the log reports.
func restoreTook(log []byte) time.Duration {
	var sum time.Duration
	for _, m := range assignedTook.FindAllSubmatch(log, -1) {
		if d, err := time.ParseDuration(string(m[1])); err == nil {
			sum += d
		}
	}
	return sum
}

// probesOf returns, for each of the partitions, the first key of keys in
// it, as the path to GET it.
func probesOf(keys []string, partitions int32, path func(key string) string) ([]probe, error) {
	found := map[int32]string{}
	for _, k := range keys {
		p := store.PartitionOf(k, partitions)
		if _, ok := found[p]; !ok {
			found[p] = k
		}
	}
	var probes []probe
	for p := range partitions {
		k, ok := found[p]
		if !ok {
			return nil, fmt.Errorf("no key of partition %d among %d keys", p, len(keys))
		}
		probes = append(probes, probe{partition: p, path: path(k)})
	}
	return probes, nil
}
