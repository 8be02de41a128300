package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"
)

// proc is one OS process of the system, run from its binary, that the
// measurement can SIGKILL and start again. Its output goes to a log file
// that stays across restarts.
type proc struct {
	name string // "order-2", "devstack"
	bin  string
	env  []string // the whole environment: nothing leaks in from this one's
	base string   // http://host:port of its API; "" for devstack
	log  string

	cmd    *exec.Cmd
	exited chan struct{} // closed once cmd has exited and been waited for
}

// start runs the binary, with env added to p.env for this start.
func (p *proc) start(env ...string) error {
	f, err := os.OpenFile(p.log, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	defer f.Close() // the child has its own copy
	fmt.Fprintf(f, "=== %s: start at %s\n", p.name, time.Now().Format(time.StampMilli))
	cmd := exec.Command(p.bin)
	cmd.Env = append(append([]string(nil), p.env...), env...)
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", p.name, err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait() // the exit status is read from cmd.ProcessState
		close(exited)
	}()
	p.cmd, p.exited = cmd, exited
	return nil
}

func (p *proc) running() bool {
	if p.cmd == nil {
		return false
	}
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

// kill sends SIGKILL and returns when it was sent, once the process is
// gone.
func (p *proc) kill() (time.Time, error) {
	at := time.Now()
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		return at, fmt.Errorf("SIGKILL %s: %w", p.name, err)
	}
	select {
	case <-p.exited:
	case <-time.After(10 * time.Second):
		return at, fmt.Errorf("%s still running 10s after SIGKILL", p.name)
	}
	if ws, ok := p.cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		return at, fmt.Errorf("%s: got %s, want killed by SIGKILL (it ended before the kill)", p.name, p.cmd.ProcessState)
	}
	return at, nil
}

// stop sends SIGTERM and waits for a clean exit, as a supervisor stops it.
func (p *proc) stop() error {
	if !p.running() {
		return nil
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		return fmt.Errorf("SIGTERM %s: %w", p.name, err)
	}
	select {
	case <-p.exited:
	case <-time.After(60 * time.Second):
		_ = p.cmd.Process.Kill()
		return fmt.Errorf("%s still running 60s after SIGTERM", p.name)
	}
	if !p.cmd.ProcessState.Success() {
		return fmt.Errorf("%s after SIGTERM: %s", p.name, p.cmd.ProcessState)
	}
	return nil
}

// killQuietly ends the process, if it runs, at the end of the measurement.
func (p *proc) killQuietly() {
	if p.running() {
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
}

// logSize is the length of the log now: what is written after it is news.
func (p *proc) logSize() int64 {
	st, err := os.Stat(p.log)
	if err != nil {
		return 0
	}
	return st.Size()
}

// logSince returns what the process logged from offset on.
func (p *proc) logSince(offset int64) []byte {
	b, err := os.ReadFile(p.log)
	if err != nil || int64(len(b)) < offset {
		return nil
	}
	return b[offset:]
}

// tail is the end of the log, for an error message.
func (p *proc) tail(n int) string {
	b, err := os.ReadFile(p.log)
	if err != nil {
		return err.Error()
	}
	lines := bytes.Split(bytes.TrimRight(b, "\n"), []byte("\n"))
	return string(bytes.Join(lines[max(0, len(lines)-n):], []byte("\n")))
}

// awaitReady polls ready until it returns nil, failing if the process
// exits first or the deadline passes.
func (p *proc) awaitReady(ctx context.Context, within time.Duration, ready func() error) error {
	return poll(ctx, within, func() error {
		if !p.running() {
			return errStop{fmt.Errorf("%s exited while starting: %s\n%s", p.name, p.cmd.ProcessState, p.tail(20))}
		}
		if err := ready(); err != nil {
			return fmt.Errorf("%s not ready: %w", p.name, err)
		}
		return nil
	})
}

// errStop stops a poll at once.
type errStop struct{ error }

// poll calls check every 10 ms until it returns nil, an errStop, or the
// deadline passes.
func poll(ctx context.Context, within time.Duration, check func() error) error {
	deadline := time.Now().Add(within)
	for {
		err := check()
		if err == nil {
			return nil
		}
		var stop errStop
		if errors.As(err, &stop) {
			return stop.error
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not within %s: %w", within, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond): // the polling interval
		}
	}
}

// getOK is nil once GET url answers 200.
func getOK(ctx context.Context, client *http.Client, url string) error {
	status, body, err := get(ctx, client, url)
	if err != nil {
		return err
	}
	if status != http.StatusOK {
		return fmt.Errorf("GET %s: %d %s", url, status, bytes.TrimSpace(body))
	}
	return nil
}

// binary is the path of a built binary, failing early if it is missing.
func binary(dir, name string) (string, error) {
	path := filepath.Join(dir, name)
	if _, err := os.Stat(path); err != nil {
		return "", fmt.Errorf("binary %s: %w (make build, or BIN=dir)", name, err)
	}
	return path, nil
}
