package main

import (
	"bufio"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestMain runs main when the test binary is started as the command.
func TestMain(m *testing.M) {
	if os.Getenv("DEVSTACK_TEST_AS_MAIN") == "1" {
		main()
		return
	}
	os.Exit(m.Run())
}

// A closed terminal (SIGHUP) stops the stack as Ctrl-C does: it closes, and
// the command exits 0, rather than dying at once with the broker's data
// unsaved.
func TestAHangupStopsTheStackCleanly(t *testing.T) {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "DEVSTACK_TEST_AS_MAIN=1", "DEVSTACK_KAFKA_ADDR=127.0.0.1:0",
		"DEVSTACK_REGISTRY_ADDR=127.0.0.1:0", "DEVSTACK_DATA_DIR="+t.TempDir())
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	up := make(chan struct{})
	go func() {
		lines := bufio.NewScanner(stderr)
		for lines.Scan() {
			if strings.Contains(lines.Text(), "devstack up") {
				close(up)
				break
			}
		}
		for lines.Scan() { // drain
		}
	}()
	select {
	case <-up:
	case <-time.After(30 * time.Second):
		t.Fatal("devstack was not up within 30s")
	}
	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("after SIGHUP: %v, want a clean exit", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("devstack did not exit within 30s of SIGHUP")
	}
}
