package system_test

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kafkasaga/kafkasaga/system"
)

// buildBinaries builds devstack, the three services and the orchestrator
// into a temporary directory and returns it. Without -race: the crash test
// is about processes dying, not about data races inside them.
func buildBinaries(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	pkgs := []string{"../devstack/cmd/devstack"}
	for _, p := range system.Processes {
		pkgs = append(pkgs, "../"+p.Main)
	}
	cmd := exec.CommandContext(t.Context(), "go", append([]string{"build", "-o", dir}, pkgs...)...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return dir
}

// proc is one process of the system, run from its binary, that a test can
// SIGKILL and start again. Its output goes to a log file that stays across
// restarts; the test prints its tail if it fails.
type proc struct {
	t     *testing.T
	name  string
	bin   string
	env   []string     // the whole environment: nothing leaks in from the test's
	ready func() error // nil once the process serves
	log   string

	cmd    *exec.Cmd
	exited chan struct{} // closed once cmd has exited and been waited for
	starts int
}

// newProc returns a proc, not started, that is killed when the test ends.
func newProc(t *testing.T, name, bin string, env []string, ready func() error) *proc {
	t.Helper()
	p := &proc{t: t, name: name, bin: bin, env: env, ready: ready, log: filepath.Join(t.TempDir(), name+".log")}
	t.Cleanup(p.cleanup)
	return p
}

// start runs the binary; awaitReady waits until it serves.
func (p *proc) start() {
	p.t.Helper()
	f, err := os.OpenFile(p.log, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		p.t.Fatal(err)
	}
	// The child has its own copy of the descriptor.
	defer f.Close()
	fmt.Fprintf(f, "=== %s: start %d at %s\n", p.name, p.starts+1, time.Now().Format(time.StampMilli))
	cmd := exec.Command(p.bin)
	diesWithTheTests(cmd)
	cmd.Env = p.env
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		p.t.Fatalf("start %s: %v", p.name, err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait() // the exit status is read from cmd.ProcessState
		close(exited)
	}()
	p.cmd, p.exited = cmd, exited
	p.starts++
}

// awaitReady polls the process's readiness check, failing the test if the
// process exits first or is not ready in time.
func (p *proc) awaitReady(within time.Duration) {
	p.t.Helper()
	eventually(p.t, within, func() error {
		if !p.running() {
			p.t.Fatalf("%s exited while starting: %s", p.name, p.cmd.ProcessState)
		}
		if err := p.ready(); err != nil {
			return fmt.Errorf("%s not ready: %w", p.name, err)
		}
		return nil
	})
}

func (p *proc) running() bool {
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// kill sends SIGKILL, waits for the process to die and checks that the
// signal, not something else, ended it.
func (p *proc) kill() {
	p.t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		p.t.Fatalf("SIGKILL %s: %v", p.name, err)
	}
	select {
	case <-p.exited:
	case <-time.After(10 * time.Second):
		p.t.Fatalf("%s still running 10s after SIGKILL", p.name)
	}
	if ws, ok := p.cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		p.t.Fatalf("%s: got %s, want killed by SIGKILL (it ended before the kill)", p.name, p.cmd.ProcessState)
	}
}

// stop sends SIGTERM and waits for the process to exit cleanly, as a
// supervisor stops it.
func (p *proc) stop() {
	p.t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		p.t.Fatalf("SIGTERM %s: %v", p.name, err)
	}
	select {
	case <-p.exited:
	case <-time.After(30 * time.Second):
		p.t.Fatalf("%s still running 30s after SIGTERM", p.name)
	}
	if !p.cmd.ProcessState.Success() {
		p.t.Fatalf("%s after SIGTERM: got %s, want exit status 0", p.name, p.cmd.ProcessState)
	}
}

// pause sends SIGSTOP: the process stays, silent, as after a long GC
// pause or a network partition; resume sends SIGCONT.
func (p *proc) pause() {
	p.t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		p.t.Fatalf("SIGSTOP %s: %v", p.name, err)
	}
}

func (p *proc) resume() {
	p.t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		p.t.Fatalf("SIGCONT %s: %v", p.name, err)
	}
}

// cleanup kills the process if it runs and, if the test failed, prints the
// end of its log.
func (p *proc) cleanup() {
	if p.cmd != nil && p.running() {
		_ = p.cmd.Process.Kill()
		select {
		case <-p.exited:
		case <-time.After(10 * time.Second):
			p.t.Errorf("%s still running 10s after SIGKILL", p.name)
		}
	}
	if p.t.Failed() {
		p.t.Logf("last lines of %s's log (%s):\n%s", p.name, p.log, tail(p.log, 40))
	}
}

func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := bytes.Split(bytes.TrimRight(b, "\n"), []byte("\n"))
	return string(bytes.Join(lines[max(0, len(lines)-n):], []byte("\n")))
}

// procs is the system run from its binaries: devstack (the embedded
// broker and the registry, or only the registry on the Kafka named by
// KAFKA_BROKERS), and n instances of each service and of the orchestrator.
// r reaches the first instance of each.
type procs struct {
	r                                      *running
	devstack                               *proc
	order, customer, payment, orchestrator *proc              // the first instances
	instances                              map[string][]*proc // by process name
	brokers                                string
}

// startProcs starts every process, one instance each, from the binaries in
// bin and waits until each is ready.
func startProcs(t *testing.T, bin string) *procs { return startInstances(t, bin, 1, 1) }

// startInstances is startProcs with n instances of every process but
// devstack, each advertising its own HTTP address, of which the first
// started are started; extra environment (NAME=value) overrides theirs.
func startInstances(t *testing.T, bin string, n, started int, extra ...string) *procs {
	t.Helper()
	names := system.Names()
	addrs := freeAddrs(t, 2+len(names)*n)
	client := &http.Client{Timeout: 10 * time.Second}
	registryURL := "http://" + addrs[1]
	brokers, devEnv := addrs[0], []string{"DEVSTACK_KAFKA_ADDR=" + addrs[0], "DEVSTACK_REGISTRY_ADDR=" + addrs[1]}
	if b := os.Getenv("KAFKA_BROKERS"); b != "" {
		brokers, devEnv = b, []string{"DEVSTACK_KAFKA_BROKERS=" + b, "DEVSTACK_REGISTRY_ADDR=" + addrs[1]}
	}
	dev := newProc(t, "devstack", filepath.Join(bin, "devstack"), devEnv, func() error {
		resp, err := client.Get(registryURL + "/subjects")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("GET /subjects: got %d, want 200", resp.StatusCode)
		}
		conn, err := net.DialTimeout("tcp", strings.Split(brokers, ",")[0], time.Second)
		if err != nil {
			return err
		}
		return conn.Close()
	})
	dev.start()
	dev.awaitReady(60 * time.Second)

	const sessionTimeout = 2 * time.Second
	state := t.TempDir() // where a killed instance leaves its local state
	service := func(name, instance, addr string) *proc {
		env := []string{
			"KAFKA_BROKERS=" + brokers, "SCHEMA_REGISTRY_URL=" + registryURL, "HTTP_ADDR=" + addr, "ADVERTISED_HTTP_ADDR=" + addr,
			fmt.Sprintf("PAYMENT_LIMIT=%d", paymentLimit), fmt.Sprintf("REFUND_LIMIT=%d", refundLimit), "STEP_TIMEOUT=2s", "KAFKA_SESSION_TIMEOUT=" + sessionTimeout.String(), "LOG_LEVEL=warn",
			"STATE_DIR=" + state,
		}
		env = append(env, extra...) // the last of a name counts
		return newProc(t, instance, filepath.Join(bin, name), env, func() error {
			resp, err := client.Get("http://" + addr + "/readyz")
			if err != nil {
				return err
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				return errors.New(resp.Status)
			}
			return nil
		})
	}
	ps := &procs{devstack: dev, instances: map[string][]*proc{}, brokers: brokers}
	base := map[string]string{}
	for i, name := range names {
		for j := range n {
			addr := addrs[2+i*n+j]
			if j == 0 {
				base[name] = "http://" + addr
			}
			ps.instances[name] = append(ps.instances[name], service(name, fmt.Sprintf("%s-%d", name, j+1), addr))
		}
	}
	ps.r = &running{order: base["order"], customer: base["customer"], payment: base["payment"], sagas: base["orchestrator"], client: client}
	ps.order, ps.customer, ps.payment, ps.orchestrator = ps.instances["order"][0], ps.instances["customer"][0], ps.instances["payment"][0], ps.instances["orchestrator"][0]
	var run []*proc
	for _, name := range names {
		run = append(run, ps.instances[name][:started]...)
	}
	for _, p := range run {
		p.start()
	}
	for _, p := range run {
		p.awaitReady(60 * time.Second)
	}
	return ps
}

// all returns devstack and then every instance.
func (ps *procs) all() []*proc {
	all := []*proc{ps.devstack}
	for _, name := range system.Names() {
		all = append(all, ps.instances[name]...)
	}
	return all
}
