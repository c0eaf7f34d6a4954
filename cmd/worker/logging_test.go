package main

import (
	"os"
	"testing"

	"go.uber.org/zap/zapcore"
)

// TestConfigLogLevelApplies: log.level and WORKER_LOG_LEVEL were validated but ignored. The logger built at
// start takes the configuration's level once it is read; --log-level still wins.
func TestConfigLogLevelApplies(t *testing.T) {
	st, err := startSimTenant(simSetup{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	f, err := os.OpenFile(st.config, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString("log:\n  level: warn\n"); err != nil {
		t.Fatal(err)
	}
	_ = f.Close()

	for _, tc := range []struct {
		name    string
		flag    string // "" = not given
		env     string
		want    zapcore.Level
		wantOff zapcore.Level // a level that must not be logged
	}{
		{"file", "", "", zapcore.WarnLevel, zapcore.InfoLevel},
		{"environment over file", "", "error", zapcore.ErrorLevel, zapcore.WarnLevel},
		{"flag over both", "debug", "error", zapcore.DebugLevel, zapcore.DebugLevel - 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("WORKER_LOG_LEVEL", tc.env)
			g := &globals{logLevel: tc.flag, logLevelSet: tc.flag != ""}
			g.log, g.level, err = newLogger(startLevel(g.logLevel, g.logLevelSet, tc.env))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := loadConfig(g, st.config); err != nil {
				t.Fatal(err)
			}
			if got := g.level.Level(); got != tc.want {
				t.Errorf("level %v, want %v", got, tc.want)
			}
			if !g.log.Core().Enabled(tc.want) || g.log.Core().Enabled(tc.wantOff) {
				t.Errorf("logger enables %v: %v, %v: %v", tc.want, g.log.Core().Enabled(tc.want), tc.wantOff, g.log.Core().Enabled(tc.wantOff))
			}
		})
	}
}

func TestStartLevel(t *testing.T) {
	for _, tc := range []struct {
		flag string
		set  bool
		env  string
		want string
	}{
		{"info", false, "", "info"},
		{"info", false, "debug", "debug"},
		{"info", false, "loud", "info"}, // validation of the configuration reports it
		{"error", true, "debug", "error"},
	} {
		if got := startLevel(tc.flag, tc.set, tc.env); got != tc.want {
			t.Errorf("startLevel(%q, %v, %q) = %q, want %q", tc.flag, tc.set, tc.env, got, tc.want)
		}
	}
}
