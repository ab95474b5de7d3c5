package pgboot

import (
	"context"
	"errors"
	"fmt"
	"os"
	"syscall"
	"time"
)

// fileLock is an exclusive flock(2) on a file. flock rather than a lock file
// that merely exists: the kernel drops the lock when its holder dies, so a
// test binary killed in the middle of initdb cannot wedge later runs. Each
// openLock has its own open file description, so goroutines of one process
// exclude each other just as processes do.
type fileLock struct {
	f    *os.File
	path string
}

// openLock opens (creating if needed) the lock file without locking it.
func openLock(path string) (*fileLock, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("pgboot: open lock file: %w", err)
	}
	return &fileLock{f: f, path: path}, nil
}

// tryLock takes the lock if nobody holds it, without waiting. Callers poll
// it rather than block in flock so that they can notice a cancelled context
// and, meanwhile, whether the holder's work made the lock unnecessary.
func (l *fileLock) tryLock() (bool, error) {
	err := syscall.Flock(int(l.f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, syscall.EWOULDBLOCK), errors.Is(err, syscall.EINTR):
		return false, nil
	default:
		return false, fmt.Errorf("pgboot: lock %s: %w", l.path, err)
	}
}

// close releases the lock, if held, and closes the file.
func (l *fileLock) close() {
	_ = syscall.Flock(int(l.f.Fd()), syscall.LOCK_UN)
	_ = l.f.Close()
}

// waitLock opens the lock file at path and waits, up to ctx, until it holds
// the lock.
func waitLock(ctx context.Context, path string) (*fileLock, error) {
	lock, err := openLock(path)
	if err != nil {
		return nil, err
	}
	for delay := 10 * time.Millisecond; ; delay = min(2*delay, time.Second) {
		locked, err := lock.tryLock()
		if err != nil {
			lock.close()
			return nil, err
		}
		if locked {
			return lock, nil
		}
		select {
		case <-ctx.Done():
			lock.close()
			return nil, fmt.Errorf("pgboot: waiting for %s (another process holds it): %w", path, ctx.Err())
		case <-time.After(delay):
		}
	}
}
