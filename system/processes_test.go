package system_test

import (
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"testing"

	"github.com/kafkasaga/kafkasaga/system"
)

// TestProcessesTable holds each row of system.Processes to what the others
// read from it: a unique name, which is also the binary of its main package
// (make build names it after its directory), and the port its Config
// listens on by default.
func TestProcessesTable(t *testing.T) {
	seen := map[string]bool{}
	for _, p := range system.Processes {
		if seen[p.Name] {
			t.Errorf("%s: got it twice, want each process once", p.Name)
		}
		seen[p.Name] = true
		if base := filepath.Base(p.Main); base != p.Name {
			t.Errorf("%s: Main %q: got binary %q, want its name", p.Name, p.Main, base)
		}
		if _, err := os.Stat(filepath.Join("..", p.Main, "main.go")); err != nil {
			t.Errorf("%s: Main %q: got %v, want a main package", p.Name, p.Main, err)
		}
		var cfg system.Config
		f, _ := reflect.TypeOf(p.Config(&cfg)).Elem().FieldByName("HTTPAddr")
		if got, want := f.Tag.Get("envDefault"), ":"+strconv.Itoa(p.Port); got != want {
			t.Errorf("%s: HTTP_ADDR's default: got %q, want %q, of Port", p.Name, got, want)
		}
		*p.HTTPAddr(&cfg) = "x"
		if got := reflect.ValueOf(p.Config(&cfg)).Elem().FieldByName("HTTPAddr").String(); got != "x" {
			t.Errorf("%s: HTTPAddr: got a field other than its Config's", p.Name)
		}
	}
}
