// Package schedule is the one parser of job schedules (jobs.<job>.schedule, `worker serve --schedule`), used by
// the configuration check and by the daemon alike, so that what validates is exactly what runs.
//
// A schedule is a cron spec of 5 fields (minute hour day month weekday), or 6 with seconds first, with an
// optional CRON_TZ=Europe/Paris prefix, or a descriptor (@hourly, @daily, @every 30m). robfig/cron accepts
// "@every 0s", negative and sub-second intervals and silently runs them every second; Parse refuses them.
package schedule

import (
	"fmt"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
)

// parser reads standard 5-field specs, an optional leading seconds field, CRON_TZ= prefixes and descriptors.
var parser = cron.NewParser(cron.SecondOptional | cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// MinEvery is the shortest @every interval: the cron library cannot run anything more often.
const MinEvery = time.Second

// Hint says how a schedule is written, for messages.
const Hint = `use 5 cron fields such as "*/30 * * * *", 6 with seconds first, an optional CRON_TZ=Europe/Paris prefix, or @hourly / @every 10m`

// Parse parses one schedule. Its error says what is wrong with spec, without a field path (callers add it).
func Parse(spec string) (cron.Schedule, error) {
	if d, ok, err := every(spec); ok {
		if err != nil {
			return nil, err
		}
		if d < MinEvery || d%time.Second != 0 {
			return nil, fmt.Errorf("@every %v: the interval must be whole seconds, at least %v (e.g. @every 30m)", d, MinEvery)
		}
	}
	s, err := parser.Parse(spec)
	if err != nil {
		return nil, fmt.Errorf("%v; %s", err, Hint)
	}
	return s, nil
}

// every reads the interval of an @every descriptor (ok false for anything else).
func every(spec string) (d time.Duration, ok bool, err error) {
	s := strings.TrimSpace(spec)
	if strings.HasPrefix(s, "TZ=") || strings.HasPrefix(s, "CRON_TZ=") {
		if i := strings.IndexAny(s, " \t"); i >= 0 {
			s = strings.TrimSpace(s[i:])
		}
	}
	rest, found := strings.CutPrefix(s, "@every ")
	if !found {
		return 0, false, nil
	}
	d, err = time.ParseDuration(strings.TrimSpace(rest))
	if err != nil {
		return 0, true, fmt.Errorf("@every %q: not a duration; write it like @every 30m or @every 1h30m", strings.TrimSpace(rest))
	}
	return d, true, nil
}
