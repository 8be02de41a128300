package system_test

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// diesWithTheTests has the child killed when the test binary dies, so that
// a suite past its -timeout (which panics, its cleanups unrun) leaves no
// service or broker running behind it.
func diesWithTheTests(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}

// A process the tests started dies with the test binary, even one killed
// outright: a helper binary starts a child as proc does, and is killed.
func TestAChildDiesWithTheTestBinary(t *testing.T) {
	if os.Getenv("DIES_WITH_THE_TESTS_HELPER") == "1" {
		cmd := exec.Command("sleep", "600")
		diesWithTheTests(cmd)
		if err := cmd.Start(); err != nil {
			fmt.Println("error:", err)
			os.Exit(1)
		}
		fmt.Println(cmd.Process.Pid)
		select {} // until the test kills it
	}
	helper := exec.Command(os.Args[0], "-test.run=^TestAChildDiesWithTheTestBinary$")
	helper.Env = append(os.Environ(), "DIES_WITH_THE_TESTS_HELPER=1")
	out, err := helper.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := helper.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	child, convErr := strconv.Atoi(strings.TrimSpace(line))
	if err != nil || convErr != nil {
		_ = helper.Process.Kill()
		t.Fatalf("the helper's child pid: %q, %v, %v", line, err, convErr)
	}
	t.Cleanup(func() { _ = syscall.Kill(child, syscall.SIGKILL) })
	if err := helper.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = helper.Wait()
	eventually(t, 5*time.Second, func() error {
		// A child killed but not yet reaped by init is a zombie: gone all
		// the same.
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", child))
		if err != nil || strings.Contains(string(stat), ") Z ") {
			return nil
		}
		return fmt.Errorf("the child %d still runs after its test binary was killed", child)
	})
}
