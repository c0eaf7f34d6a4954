package schedule

import (
	"strings"
	"testing"
	"time"
)

func TestParse(t *testing.T) {
	from := time.Date(2026, 1, 1, 10, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		spec    string
		next    time.Duration // after from; 0 = refused
		wantErr string
	}{
		{"*/30 * * * *", 30 * time.Minute, ""},
		{"*/10 * * * * *", 10 * time.Second, ""},
		{"@hourly", time.Hour, ""},
		{"@every 30m", 30 * time.Minute, ""},
		{"@every 1s", time.Second, ""},
		{"CRON_TZ=Europe/Paris @every 2h", 2 * time.Hour, ""},
		// robfig/cron runs each of these every second.
		{"@every 0s", 0, "at least 1s"},
		{"@every -5m", 0, "at least 1s"},
		{"@every 500ms", 0, "at least 1s"},
		{"@every 1.5s", 0, "whole seconds"},
		{"CRON_TZ=UTC @every 0s", 0, "at least 1s"},
		{"@every soon", 0, "not a duration"},
		{"every day", 0, "5 cron fields"},
		{"", 0, "5 cron fields"},
	} {
		t.Run(tc.spec, func(t *testing.T) {
			s, err := Parse(tc.spec)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := s.Next(from).Sub(from); got != tc.next {
				t.Errorf("next after %v, want %v", got, tc.next)
			}
		})
	}
}
