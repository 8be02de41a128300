package createorder_test

import (
	"os"
	"regexp"
	"strings"
	"testing"
)

// TestDocShowsTheRealPaymentStep keeps docs/adding-a-saga-step.md true: the
// step and the interaction it shows must be the ones the code declares.
func TestDocShowsTheRealPaymentStep(t *testing.T) {
	code, err := os.ReadFile("createorder.go")
	if err != nil {
		t.Fatal(err)
	}
	doc, err := os.ReadFile("../../docs/adding-a-saga-step.md")
	if err != nil {
		t.Fatal(err)
	}
	step := regexp.MustCompile(`(?s)\{\s*Name:\s+"authorize_payment".*?\n\t\t\t\},`).Find(code)
	if step == nil {
		t.Fatal(`createorder.go declares no "authorize_payment" step`)
	}
	interactions, err := os.ReadFile("../../contracts/interactions.go")
	if err != nil {
		t.Fatal(err)
	}
	interaction := regexp.MustCompile(`(?s)AuthorizePaymentInteraction = .*?\n\t\}`).Find(interactions)
	if interaction == nil {
		t.Fatal("contracts/interactions.go declares no AuthorizePaymentInteraction")
	}
	// The step names both builders: the doc shows each, so that what it
	// shows compiles.
	for _, part := range [][]byte{step, funcSource(t, code, "authorizePayment"), funcSource(t, code, "cancelPayment"), interaction} {
		if !strings.Contains(normalize(string(doc)), normalize(string(part))) {
			t.Errorf("docs/adding-a-saga-step.md does not show, as the code has it:\n%s", part)
		}
	}
}

func funcSource(t *testing.T, code []byte, name string) []byte {
	t.Helper()
	f := regexp.MustCompile(`(?s)func ` + name + `\(.*?\n\}`).Find(code)
	if f == nil {
		t.Fatalf("createorder.go has no func %s", name)
	}
	return f
}

// normalize folds indentation, which differs between Go and Markdown.
func normalize(s string) string { return strings.Join(strings.Fields(s), " ") }
