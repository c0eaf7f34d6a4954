package daemon

import (
	"context"
	"log/slog"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// newSlogger gives River (which logs through log/slog) the daemon's zap logger. River's routine messages
// (client started, leader elected) are info; they go to zap at debug so a fleet's log stays about runs.
func newSlogger(l *zap.Logger) *slog.Logger { return slog.New(zapHandler{l: l}) }

type zapHandler struct {
	l      *zap.Logger
	fields []zap.Field
	group  string
}

func (h zapHandler) level(l slog.Level) zapcore.Level {
	switch {
	case l >= slog.LevelError:
		return zapcore.ErrorLevel
	case l >= slog.LevelWarn:
		return zapcore.WarnLevel
	}
	return zapcore.DebugLevel
}

func (h zapHandler) Enabled(_ context.Context, l slog.Level) bool {
	return h.l.Core().Enabled(h.level(l))
}

func (h zapHandler) Handle(_ context.Context, r slog.Record) error {
	fields := append([]zap.Field(nil), h.fields...)
	r.Attrs(func(a slog.Attr) bool {
		fields = append(fields, zap.Any(h.group+a.Key, a.Value.Any()))
		return true
	})
	if ce := h.l.Check(h.level(r.Level), r.Message); ce != nil {
		ce.Write(fields...)
	}
	return nil
}

func (h zapHandler) WithAttrs(as []slog.Attr) slog.Handler {
	fields := append([]zap.Field(nil), h.fields...)
	for _, a := range as {
		fields = append(fields, zap.Any(h.group+a.Key, a.Value.Any()))
	}
	return zapHandler{l: h.l, fields: fields, group: h.group}
}

func (h zapHandler) WithGroup(name string) slog.Handler {
	return zapHandler{l: h.l, fields: h.fields, group: h.group + name + "."}
}
