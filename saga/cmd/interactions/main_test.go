package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestGenerate: the reply interface of a declaration, and a clear error,
// not a panic, for replies written otherwise than as &Record{}.
func TestGenerate(t *testing.T) {
	const head = "package contracts\n\nimport \"github.com/kafkasaga/kafkasaga/saga\"\n\n"
	tests := []struct {
		name, replies string
		want          string // in the output, or in the error
	}{
		{"records", "[]PayReply{&Paid{}, &Declined{}}", "func (*Declined) isPayReply() {}"},
		{"a variable's address", "[]PayReply{&paid}", "a reply is not &Record{}"},
		{"a qualified record", "[]PayReply{&other.Paid{}}", "a reply is not &Record{}"},
		{"a value", "[]PayReply{Paid{}}", "a reply is not &Record{}"},
		{"not a literal", "replies", "Replies is not a literal list"},
		{"none", "[]PayReply{}", "declares no replies"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "interactions.go")
			src := head + "var Pay = saga.Interaction[*Pay, PayReply]{\n\tReplies: " + tt.replies + ",\n}\n"
			if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
				t.Fatal(err)
			}
			out, err := generate(path)
			got := string(out)
			if err != nil {
				got = err.Error()
			}
			if !strings.Contains(got, tt.want) {
				t.Errorf("got %q, want it to contain %q", got, tt.want)
			}
		})
	}
}
