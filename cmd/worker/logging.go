package main

import (
	"fmt"
	"os"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"golang.org/x/term"

	"github.com/exo-worker/worker/config"
)

// newLogger builds the one logger of the process: a human console encoder when stderr is a terminal,
// JSON otherwise (for journald, containers and log shippers). Logs go to stderr; stdout is for output. The
// level is atomic so that log.level (or WORKER_LOG_LEVEL) can take effect once the configuration is read.
func newLogger(level string) (*zap.Logger, zap.AtomicLevel, error) {
	lvl, err := parseLevel(level)
	if err != nil {
		return nil, zap.AtomicLevel{}, fmt.Errorf("--log-level %q: use debug, info, warn or error", level)
	}
	atom := zap.NewAtomicLevelAt(lvl)
	var enc zapcore.Encoder
	if isTerminal(os.Stderr) {
		ec := zap.NewDevelopmentEncoderConfig()
		ec.EncodeLevel = zapcore.CapitalColorLevelEncoder
		ec.EncodeTime = zapcore.TimeEncoderOfLayout("15:04:05")
		enc = zapcore.NewConsoleEncoder(ec)
	} else {
		ec := zap.NewProductionEncoderConfig()
		ec.EncodeTime = zapcore.ISO8601TimeEncoder
		enc = zapcore.NewJSONEncoder(ec)
	}
	core := zapcore.NewCore(enc, zapcore.Lock(os.Stderr), atom)
	return zap.New(core), atom, nil
}

func parseLevel(s string) (zapcore.Level, error) {
	var lvl zapcore.Level
	err := lvl.UnmarshalText([]byte(s))
	return lvl, err
}

// startLevel is the level before any configuration is read: --log-level if given, else WORKER_LOG_LEVEL
// (so commands that read no configuration honour it too), else info.
func startLevel(flag string, flagSet bool, env string) string {
	if flagSet {
		return flag
	}
	if _, err := parseLevel(env); env != "" && err == nil {
		return env
	}
	return "info"
}

// applyConfigLevel sets the level from the configuration (log.level, which WORKER_LOG_LEVEL overrides),
// unless --log-level was given: the flag wins, as flags do over the file and the environment.
func (g *globals) applyConfigLevel(cfg *config.Config) {
	if g.logLevelSet || cfg == nil {
		return
	}
	if lvl, err := parseLevel(cfg.Log.Level); err == nil {
		g.level.SetLevel(lvl)
	}
}

func isTerminal(f *os.File) bool { return term.IsTerminal(int(f.Fd())) }
