package messaging_test

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"

	"github.com/ThreeDotsLabs/watermill"

	"github.com/kafkasaga/kafkasaga/platform/messaging"
)

func TestLoggerLevels(t *testing.T) {
	tests := []struct {
		level slog.Level
		want  []string // the lines that reach the handler
	}{
		{slog.LevelInfo, []string{"error line"}},
		{slog.LevelDebug, []string{"error line", "info line", "debug line"}},
		{watermill.LevelTrace, []string{"error line", "info line", "debug line", "trace line"}},
	}
	for _, tt := range tests {
		t.Run(tt.level.String(), func(t *testing.T) {
			var buf bytes.Buffer
			l := messaging.Logger(slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: tt.level}))).
				With(watermill.LogFields{"topic": "t"})
			l.Error("error line", nil, nil)
			l.Info("info line", nil)
			l.Debug("debug line", nil)
			l.Trace("trace line", nil)
			var got []string
			for _, line := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
				if i := strings.Index(line, "msg=\""); i >= 0 {
					got = append(got, strings.SplitN(line[i+5:], "\"", 2)[0])
				}
			}
			if strings.Join(got, ",") != strings.Join(tt.want, ",") {
				t.Errorf("at %s: got lines %q, want %q", tt.level, got, tt.want)
			}
		})
	}
}
