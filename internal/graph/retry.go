package graph

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/exo-worker/worker/internal/retry"
	"go.uber.org/zap"
)

// retryTransport sits below the SDK's middleware (so it sees each real attempt, with the token and the
// gzipped body already in place) and retries 429, 503, 504 and connection errors a bounded number of times,
// waiting as the shared policy says (internal/retry: Retry-After, fractions kept, up to MaxRetryWait, else
// capped exponential backoff with jitter from 0.5 s). It
// replaces kiota's retry handler, which panics when given options without ShouldRetry, truncates Retry-After
// to whole seconds and cannot count what it did.
type retryTransport struct {
	next       http.RoundTripper
	maxRetries int
	policy     retry.Policy // internal/retry: Retry-After up to policy.MaxWait, else backoff
	log        *zap.Logger

	requests, retries, throttled atomic.Int64
}

func retryable(status int) bool {
	return status == http.StatusTooManyRequests || status == http.StatusServiceUnavailable || status == http.StatusGatewayTimeout
}

// replayable reports whether a request may be sent again after a connection error, when the service may have
// run it: reads, and this package's $batch posts, which hold only GETs.
func replayable(r *http.Request) bool {
	return r.Method == http.MethodGet || r.Method == http.MethodHead || strings.HasSuffix(r.URL.Path, "/$batch")
}

func (rt *retryTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	var body []byte
	if req.Body != nil && req.Body != http.NoBody {
		b, err := io.ReadAll(req.Body)
		_ = req.Body.Close()
		if err != nil {
			return nil, err
		}
		body = b
	}
	ctx := req.Context()
	for attempt := 0; ; attempt++ {
		r := req.Clone(ctx)
		if body != nil {
			r.Body = io.NopCloser(bytes.NewReader(body))
			r.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
			r.ContentLength = int64(len(body))
		}
		if attempt > 0 {
			r.Header.Set("Retry-Attempt", strconv.Itoa(attempt))
		}
		rt.requests.Add(1)
		resp, err := rt.next.RoundTrip(r)
		var wait time.Duration
		var why string
		switch {
		case err != nil:
			if ctx.Err() != nil || attempt >= rt.maxRetries || !replayable(req) {
				return nil, err
			}
			wait, why = rt.policy.Backoff(attempt+1), err.Error()
		case retryable(resp.StatusCode):
			if resp.StatusCode == http.StatusTooManyRequests {
				rt.throttled.Add(1)
			}
			if attempt >= rt.maxRetries {
				return resp, nil
			}
			ra, _ := retry.ParseRetryAfter(resp.Header.Get("Retry-After"), time.Now())
			w, ok := rt.policy.Wait(attempt+1, ra)
			if !ok {
				return resp, nil // the caller's error then carries the RetryAfter Graph asked for
			}
			wait = w
			why = resp.Status
			_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
			_ = resp.Body.Close()
		default:
			return resp, nil
		}
		rt.retries.Add(1)
		rt.log.Debug("graph: retrying", zap.String("method", req.Method), zap.String("path", req.URL.Path),
			zap.String("reason", why), zap.Duration("wait", wait), zap.Int("attempt", attempt+1))
		if err := sleep(ctx, wait); err != nil {
			return nil, err
		}
	}
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
