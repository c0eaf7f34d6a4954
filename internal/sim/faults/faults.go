// Package faults is what the simulator injects to make the service slow and flaky the way Exchange Online
// is: request RTT, a throttle budget answered with 429 and Retry-After, transient 5xx, dropped connections,
// truncated bodies, and stale reads after a write (stale.go).
package faults

import (
	"math"
	"math/rand/v2"
	"sync"
	"time"
)

// Faults are injected into the EXO admin API so clients can be tested against a slow, throttling and
// flaky service. The zero value injects nothing. Faults can be replaced while the server runs (SetFaults).
type Faults struct {
	// RTT is added to every request before it is answered (the token endpoint included).
	RTT time.Duration
	// ThrottleBudget is the sustained request rate (requests per second) the tenant allows; 0 turns
	// throttling off. Every InvokeCommand call and every $batch sub-request costs one token from a bucket
	// refilled at this rate; a call without a token is answered 429 with Retry-After.
	ThrottleBudget float64
	// ThrottleBurst is the bucket size; 0 means one second's worth of ThrottleBudget (at least 1).
	ThrottleBurst int
	// OpaqueRateHeaders keeps the Rate-Limit-* headers at the service-wide values (30000 per window) even
	// when ThrottleBudget is set, as the real service does: the headers then say nothing about the budget
	// and a client can only learn it from 429s.
	OpaqueRateHeaders bool
	// ErrorRate is the probability (0..1) that a call (or sub-request) fails with a transient 500/503
	// carrying one of the exception names clients retry on (DCOverloadedException, ...). Nothing is changed.
	ErrorRate float64
	// ResetRate is the probability that the connection is dropped after the cmdlet ran, without a response
	// (so a write may have happened: clients must treat the outcome as unknown and read back).
	ResetRate float64
	// TruncateRate is the probability that only half of the response body is sent before the connection
	// is dropped (the cmdlet ran).
	TruncateRate float64
	// StaleReads is how long a Get-* keeps showing an object's previous UseMapiRichTextFormat after a
	// Set-MailUser changed it: EXO's read-after-write lag between domain controllers.
	StaleReads time.Duration
	// Seed makes the random faults reproducible.
	Seed int64
}

// FaultStats count the faults injected so far, for tests to bound (e.g. "at most N 429s").
type FaultStats struct {
	Throttled int64 // 429 answers, whole requests and sub-requests
	Errors    int64 // injected 500/503
	Resets    int64 // dropped connections
	Truncated int64 // half bodies
}

// State is the live fault configuration plus the throttle bucket and the seeded dice.
type State struct {
	mu     sync.Mutex
	f      Faults
	rnd    *rand.Rand
	tokens float64
	last   time.Time
	stats  FaultStats
	now    func() time.Time

	// Rate-Limit-* bookkeeping when throttling is off: a large budget counted down per window, as the
	// service reports it.
	winStart time.Time
	winCount int
}

const (
	serviceRateLimit  = 30000
	serviceRateWindow = 16 * time.Second
)

func NewState(f Faults) *State {
	fs := &State{now: time.Now}
	fs.Set(f)
	return fs
}

// set replaces the faults; the bucket starts full and the dice restart from the seed.
func (fs *State) Set(f Faults) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	fs.f = f
	fs.rnd = rand.New(rand.NewPCG(uint64(f.Seed), 0x5851f42d4c957f2d))
	fs.tokens = fs.burstLocked()
	fs.last = fs.now()
}

func (fs *State) Get() Faults {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	return fs.f
}

func (fs *State) burstLocked() float64 {
	if fs.f.ThrottleBurst > 0 {
		return float64(fs.f.ThrottleBurst)
	}
	return math.Max(1, math.Ceil(fs.f.ThrottleBudget))
}

func (fs *State) refillLocked(now time.Time) {
	if fs.f.ThrottleBudget <= 0 {
		return
	}
	if el := now.Sub(fs.last).Seconds(); el > 0 {
		fs.tokens = math.Min(fs.burstLocked(), fs.tokens+el*fs.f.ThrottleBudget)
	}
	fs.last = now
}

// take spends one throttle token. When none is left it reports the wait until one will be, which the
// 429 carries as Retry-After (whole seconds, at least 1, like the service).
func (fs *State) Take() (ok bool, retryAfter time.Duration) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	now := fs.now()
	fs.countLocked(now)
	if fs.f.ThrottleBudget <= 0 {
		return true, 0
	}
	fs.refillLocked(now)
	if fs.tokens >= 1 {
		fs.tokens--
		return true, 0
	}
	fs.stats.Throttled++
	wait := time.Duration((1 - fs.tokens) / fs.f.ThrottleBudget * float64(time.Second))
	return false, wait
}

func (fs *State) countLocked(now time.Time) {
	if now.Sub(fs.winStart) >= serviceRateWindow {
		fs.winStart, fs.winCount = now, 0
	}
	fs.winCount++
}

// rateHeaders returns the Rate-Limit-Limit/Remaining/Reset values to report.
func (fs *State) RateHeaders() (limit, remaining int, reset time.Time) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	now := fs.now()
	if fs.f.ThrottleBudget > 0 && !fs.f.OpaqueRateHeaders {
		fs.refillLocked(now)
		burst := fs.burstLocked()
		missing := burst - fs.tokens
		return int(burst), int(math.Floor(fs.tokens)), now.Add(time.Duration(missing / fs.f.ThrottleBudget * float64(time.Second)))
	}
	if now.Sub(fs.winStart) >= serviceRateWindow {
		fs.winStart, fs.winCount = now, 0
	}
	return serviceRateLimit, max(0, serviceRateLimit-fs.winCount), fs.winStart.Add(serviceRateWindow)
}

// roll decides a random fault of the given kind, counting it when it fires.
func (fs *State) Roll(kind Kind) bool {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	var p float64
	switch kind {
	case KindError:
		p = fs.f.ErrorRate
	case KindReset:
		p = fs.f.ResetRate
	case KindTruncate:
		p = fs.f.TruncateRate
	}
	if p <= 0 || fs.rnd.Float64() >= p {
		return false
	}
	switch kind {
	case KindError:
		fs.stats.Errors++
	case KindReset:
		fs.stats.Resets++
	case KindTruncate:
		fs.stats.Truncated++
	}
	return true
}

// pick returns a deterministic index in [0, n).
func (fs *State) Pick(n int) int {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	return fs.rnd.IntN(n)
}

func (fs *State) Snapshot() FaultStats {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	return fs.stats
}

type Kind int

const (
	KindError Kind = iota
	KindReset
	KindTruncate
)

// TransientFaults are the exception names EXO clients retry on (research §2.4), with the status and text
// the simulator answers when ErrorRate fires.
var TransientFaults = []Transient{
	{503, "Microsoft.Exchange.Data.Directory.DCOverloadedException",
		"Active Directory server NAMPR11A004DC01.NAMPR11A004.PROD.OUTLOOK.COM is overloaded and can't process the request. Try again later."},
	{500, "Microsoft.Exchange.Data.Directory.SuitabilityDirectoryException",
		"The Active Directory server NAMPR11A004DC02.NAMPR11A004.PROD.OUTLOOK.COM is not available. Error: The server is not operational."},
	{503, "Microsoft.Exchange.Data.ServerInMMException",
		"The server CH2PR11MB4321.namprd11.prod.outlook.com is in maintenance mode. Try again later."},
	{500, "Microsoft.Exchange.Data.Directory.ADServerSettingsChangedException",
		"The Active Directory server settings changed while the operation was running. Try again."},
	{500, "Microsoft.Exchange.Data.Storage.StorageTransientException",
		"A transient storage error occurred. Try again later."},
}

// Transient is one transient failure EXO answers: the HTTP status, the exception type name and its text.
type Transient struct {
	Status        int
	ExceptionType string
	Message       string
}
