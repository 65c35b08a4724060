package mmapreceiver // import "github.com/otelcol-mmap/mmapreceiver"

import (
	"context"
	"sync"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/receiver"
)

// sharedMap hands out one receiver instance per component ID, so that the
// traces, metrics and logs pipelines of "mmap/x" all read the same files
// through one reader per file (a file can only have one reader).
type sharedMap struct {
	mu    sync.Mutex
	items map[component.ID]*sharedReceiver
}

func newSharedMap() *sharedMap {
	return &sharedMap{items: map[component.ID]*sharedReceiver{}}
}

// sharedReceiver is the component handed to the collector for each signal.
// Start starts the shared instance once; the first Shutdown stops it and
// forgets it, so that a later create builds a fresh one.
type sharedReceiver struct {
	m         *sharedMap
	id        component.ID
	r         *mmapReceiver
	startOnce sync.Once
	startErr  error
	stopOnce  sync.Once
	stopErr   error
}

func (m *sharedMap) getOrCreate(set receiver.Settings, cfg *Config) (*sharedReceiver, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if s, ok := m.items[set.ID]; ok {
		return s, nil
	}
	r, err := newMmapReceiver(set, cfg)
	if err != nil {
		return nil, err
	}
	s := &sharedReceiver{m: m, id: set.ID, r: r}
	m.items[set.ID] = s
	return s, nil
}

func (m *sharedMap) remove(s *sharedReceiver) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.items[s.id] == s {
		delete(m.items, s.id)
	}
}

func (s *sharedReceiver) Start(ctx context.Context, host component.Host) error {
	s.startOnce.Do(func() {
		s.startErr = s.r.Start(ctx, host)
	})
	return s.startErr
}

func (s *sharedReceiver) Shutdown(ctx context.Context) error {
	s.stopOnce.Do(func() {
		s.m.remove(s)
		s.stopErr = s.r.Shutdown(ctx)
	})
	return s.stopErr
}
