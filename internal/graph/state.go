package graph

import (
	"bytes"
	"context"
	"encoding/gob"
	"errors"
	"fmt"
	"sync"

	"go.uber.org/zap"
)

// StateStore keeps what a later process needs to resume with a delta round instead of reading the directory
// again: per resource ("users", "groups", "contacts") a compact copy of the objects (the directory types,
// which hold only the properties audits read) and the deltaLink. internal/store implements it for SQLite;
// the methods are plain bytes and strings so that a PostgreSQL store implements them the same way.
//
// The objects are saved as one blob per resource, rewritten only after a round that changed something (an
// unchanged round saves only its new link): loading one blob is far cheaper than 100,000 rows. The blob is
// written before the link, so a crash between the two leaves an older link, whose replay is harmless. An
// empty saved link makes the next Snapshot read that resource from scratch (the way to force a full read).
type StateStore interface {
	// GetSnapshot returns the blob saved under name, or nil when there is none.
	GetSnapshot(ctx context.Context, name string) ([]byte, error)
	// PutSnapshot replaces the blob saved under name.
	PutSnapshot(ctx context.Context, name string, data []byte) error
	GetDeltaLink(ctx context.Context, resource string) (string, error)
	SetDeltaLink(ctx context.Context, resource, link string) error
}

// stateFormat versions the saved blob; a blob of another format is read from scratch instead of decoded.
// Bump it whenever a directory type changes shape.
const stateFormat = 1

type savedState[T any] struct {
	Format int
	Items  []T
}

func snapshotName(resource string) string { return "graph/" + resource }

// loadState reads the saved state of one resource, once per process. A missing, unreadable or old-format
// state leaves the resource unloaded: the next round reads it from scratch.
func loadState[T any](ctx context.Context, c *Client, st *deltaState[T]) error {
	if st.tried {
		return nil
	}
	st.tried = true
	link, err := c.state.GetDeltaLink(ctx, st.resource)
	if err != nil {
		return fmt.Errorf("graph: read the saved delta link of %s: %w", st.resource, err)
	}
	if link == "" {
		return nil
	}
	data, err := c.state.GetSnapshot(ctx, snapshotName(st.resource))
	if err != nil {
		return fmt.Errorf("graph: read the saved %s: %w", st.resource, err)
	}
	if data == nil {
		return nil
	}
	var s savedState[T]
	if err := gob.NewDecoder(bytes.NewReader(data)).Decode(&s); err != nil || s.Format != stateFormat {
		c.log.Warn("graph: the saved directory state cannot be used; reading the resource from scratch",
			zap.String("resource", st.resource), zap.Int("format", s.Format), zap.Error(err))
		return nil
	}
	st.items, st.link, st.loaded = s.Items, link, true
	return nil
}

// saveState records a finished round: the objects when they changed, then the link. Both are written only
// after the whole round was applied, so a crash mid-round repeats the round instead of skipping changes.
func saveState[T any](ctx context.Context, c *Client, st *deltaState[T], link string, changed bool) error {
	st.link = link
	if changed {
		var buf bytes.Buffer
		if err := gob.NewEncoder(&buf).Encode(savedState[T]{Format: stateFormat, Items: st.items}); err != nil {
			return fmt.Errorf("graph: encode the %s state: %w", st.resource, err)
		}
		if err := c.state.PutSnapshot(ctx, snapshotName(st.resource), buf.Bytes()); err != nil {
			return fmt.Errorf("graph: save the %s state: %w", st.resource, err)
		}
	}
	if err := c.state.SetDeltaLink(ctx, st.resource, link); err != nil {
		return fmt.Errorf("graph: save the delta link of %s: %w", st.resource, err)
	}
	return nil
}

// MemoryState is a StateStore that lives as long as the process: a daemon without a database, and tests.
type MemoryState struct {
	mu    sync.Mutex
	blobs map[string][]byte
	links map[string]string
}

// NewMemoryState returns an empty MemoryState.
func NewMemoryState() *MemoryState {
	return &MemoryState{blobs: map[string][]byte{}, links: map[string]string{}}
}

// GetSnapshot implements StateStore.
func (m *MemoryState) GetSnapshot(_ context.Context, name string) ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.blobs[name], nil
}

// PutSnapshot implements StateStore.
func (m *MemoryState) PutSnapshot(_ context.Context, name string, data []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.blobs[name] = bytes.Clone(data)
	return nil
}

// GetDeltaLink implements StateStore.
func (m *MemoryState) GetDeltaLink(_ context.Context, resource string) (string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.links[resource], nil
}

// SetDeltaLink implements StateStore.
func (m *MemoryState) SetDeltaLink(_ context.Context, resource, link string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.links[resource] = link
	return nil
}

// DeleteDeltaLink forgets a link, forcing the next Snapshot to read that resource from scratch.
func (m *MemoryState) DeleteDeltaLink(_ context.Context, resource string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.links, resource)
	return nil
}

// asError finds the *Error in err's chain.
func asError(err error) (*Error, bool) {
	var ge *Error
	ok := errors.As(err, &ge)
	return ge, ok
}
