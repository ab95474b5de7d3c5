package app

import (
	"context"
	"time"
)

// masterKeyRefreshEvery is how often a process rereads the master key
// state, so that it learns a rotation's new key within this time; `rapport
// keys rotate` waits longer than this before it finishes.
const masterKeyRefreshEvery = 2 * time.Second

// watchMasterKey keeps the keyring's master key state fresh until Close.
func (m *Main) watchMasterKey(ctx context.Context) {
	ctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	go func() {
		defer close(done)
		m.Keyring.Watch(ctx, masterKeyRefreshEvery, m.cfg.Logger)
	}()
	m.closers = append(m.closers, func(context.Context) error { cancel(); <-done; return nil })
}
