package main

import (
	"bytes"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// TestWalkthroughAddsTheInventoryStep does what docs/adding-a-saga-step.md
// walks through, in a copy of the repository: make participant
// NAME=inventory, the hand-written patch that adds the ReserveInventory
// step to the Create Order saga, make docs; then it builds the copy and
// runs there the participant's domain test, the saga definition's tests,
// deploy's checks of docker-compose.yml and the docs, and the end-to-end
// test of the saga's branches as the patch leaves it, which drives an
// approved saga and two compensated ones (out of stock; payment declined,
// stock released) through the new participant on the embedded broker and
// registry.
func TestWalkthroughAddsTheInventoryStep(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and tests a copy of the repository: a few minutes")
	}
	fromTheTemplate(t)
	dir := copyRepository(t)
	t.Setenv("GOWORK", "")

	if err := run(t.Context(), dir, "inventory", io.Discard); err != nil {
		t.Fatalf("make participant NAME=inventory: %v", err)
	}
	patch, err := filepath.Abs(patchFile)
	if err != nil {
		t.Fatal(err)
	}
	// git apply applies to the repository it is in: make the copy one.
	for _, args := range [][]string{{"init", "-q"}, {"apply", patch}} {
		if out, err := exec.Command("git", append([]string{"-C", dir}, args...)...).CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	goCommand(t, dir, "run", "./orchestrator/cmd/diagrams", "-dir", "docs/sagas") // make docs

	goCommand(t, dir, "build", "work")
	goCommand(t, dir, "vet", "./services/inventory/...", "./orchestrator/...", "./system/...")
	goCommand(t, dir, "test", "-count=1", "./services/inventory/...", "./orchestrator/...", "./deploy/...")
	// The saga's branches with the new step, and the system tests that
	// know the saga's steps: they must hold with one more.
	out := goCommand(t, dir, "test", "-count=1", "-v", "-run", "^(TestCreateOrderSagaBranches|TestProcessesTable|TestOneTraceFollowsASaga|"+
		"TestAnOperatorAbortsASagaWaitingOnASilentParticipant|TestConsoleShowsASagaWaiting|TestAParticipantThatNeverAnswersTimesOut|"+
		"TestConsoleListsSagas|TestConsoleStreamsTransitions)$", "./system")
	for _, test := range []string{
		"TestCreateOrderSagaBranches/approved",
		"TestCreateOrderSagaBranches/out_of_stock,_credit_released",
		"TestCreateOrderSagaBranches/payment_declined,_stock_and_credit_released",
		"TestProcessesTable",
		"TestOneTraceFollowsASaga",
		"TestAnOperatorAbortsASagaWaitingOnASilentParticipant",
		"TestConsoleShowsASagaWaiting",
		"TestAParticipantThatNeverAnswersTimesOut",
		"TestConsoleListsSagas",
		"TestConsoleStreamsTransitions",
	} {
		if !bytes.Contains(out, []byte("--- PASS: "+test+" ")) {
			t.Errorf("%s did not pass in the copy:\n%s", test, out)
		}
	}
	// The new module builds on its own too, as every module does, and so
	// do those that now need it, from go.mod files that go mod tidy
	// leaves as they are (make vet).
	for _, module := range []string{"services/inventory", "system", "deploy"} {
		for _, args := range [][]string{{"list", "-deps", "-test", "./..."}, {"mod", "tidy", "-diff"}} {
			cmd := exec.Command("go", args...)
			cmd.Dir = filepath.Join(dir, module)
			cmd.Env = append(os.Environ(), "GOWORK=off")
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Errorf("go %v in %s with GOWORK=off: %v\n%s", args, module, err, out)
			}
		}
	}
}
