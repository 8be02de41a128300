package messaging

import (
	"context"
	"log/slog"

	"github.com/ThreeDotsLabs/watermill"
)

// Logger adapts slog for watermill. Watermill's info lines (subscribing,
// handlers starting) become debug, so the info level shows the system's own
// lines, one per saga transition. And a trace or debug line is dropped
// before its fields are built: watermill logs several per message, which
// otherwise cost about 2.5% of the CPU under load even when discarded.
func Logger(l *slog.Logger) watermill.LoggerAdapter {
	return levelled{
		LoggerAdapter: watermill.NewSlogLoggerWithLevelMapping(l, map[slog.Level]slog.Level{slog.LevelInfo: slog.LevelDebug}),
		slog:          l,
	}
}

type levelled struct {
	watermill.LoggerAdapter
	slog *slog.Logger
}

func (a levelled) Info(msg string, fields watermill.LogFields) {
	if a.slog.Enabled(context.Background(), slog.LevelDebug) {
		a.LoggerAdapter.Info(msg, fields)
	}
}

func (a levelled) Debug(msg string, fields watermill.LogFields) {
	if a.slog.Enabled(context.Background(), slog.LevelDebug) {
		a.LoggerAdapter.Debug(msg, fields)
	}
}

func (a levelled) Trace(msg string, fields watermill.LogFields) {
	if a.slog.Enabled(context.Background(), watermill.LevelTrace) {
		a.LoggerAdapter.Trace(msg, fields)
	}
}

func (a levelled) With(fields watermill.LogFields) watermill.LoggerAdapter {
	return levelled{LoggerAdapter: a.LoggerAdapter.With(fields), slog: a.slog}
}
