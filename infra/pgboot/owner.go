package pgboot

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"
)

// osUser is an unprivileged account to run PostgreSQL as when we are root.
type osUser struct {
	name     string
	uid, gid uint32
	groups   []uint32
}

// chooseOwner decides who runs the cluster: ourselves, or when we are root
// (initdb and postgres refuse to run as root) the "postgres" user that
// distribution packages create, or "nobody" on a machine without one. It
// runs after any installation, which is what creates "postgres".
func (c *cluster) chooseOwner(lookupUser func(string) (*user.User, error)) error {
	if os.Geteuid() != 0 {
		c.owner = nil
		return nil
	}
	owner, err := unprivilegedUser(lookupUser)
	if err != nil {
		return err
	}
	c.owner = owner
	return nil
}

func unprivilegedUser(lookupUser func(string) (*user.User, error)) (*osUser, error) {
	for _, name := range []string{"postgres", "nobody"} {
		u, err := lookupUser(name)
		if err != nil {
			continue
		}
		uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
		gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
		if err1 != nil || err2 != nil {
			continue
		}
		owner := &osUser{name: name, uid: uint32(uid), gid: uint32(gid), groups: []uint32{}}
		if ids, err := u.GroupIds(); err == nil {
			for _, id := range ids {
				if g, err := strconv.ParseUint(id, 10, 32); err == nil {
					owner.groups = append(owner.groups, uint32(g))
				}
			}
		}
		return owner, nil
	}
	return nil, errors.New(`pgboot: running as root, and there is neither a "postgres" nor a "nobody" user to run PostgreSQL as (it refuses to run as root); create one (adduser --system postgres) or set DATABASE_URL`)
}

// ownerIDs is the uid and gid the cluster's files must have.
func (c *cluster) ownerIDs() (uid, gid int) {
	if c.owner == nil {
		return os.Getuid(), os.Getgid()
	}
	return int(c.owner.uid), int(c.owner.gid)
}

// prepareRoot creates the cluster's directory and, when we are root, hands
// it to the cluster's owner, who must be able to create pgdata and the log
// in it. When the owner cannot reach DataDir (a checkout under /root, which
// is 0700), the cluster moves to a place it can reach; see relocate.
func (c *cluster) prepareRoot() error {
	if c.owner != nil {
		if unreachable := checkReachable(c.root, c.owner); unreachable != nil {
			if err := c.relocate(unreachable); err != nil {
				return err
			}
		}
	}
	if err := os.MkdirAll(filepath.Dir(c.root), 0o755); err != nil {
		return fmt.Errorf("pgboot: create %s: %w", filepath.Dir(c.root), err)
	}
	if err := os.Mkdir(c.root, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
		return fmt.Errorf("pgboot: create DataDir: %w", err)
	}
	if c.owner == nil {
		// Not root: we cannot repair another user's cluster, only say so,
		// before trying its lock (which would fail on permissions).
		return c.repairOwnership()
	}
	if err := os.Chown(c.root, int(c.owner.uid), int(c.owner.gid)); err != nil {
		return fmt.Errorf("pgboot: hand %s to user %s: %w", c.root, c.owner.name, err)
	}
	return nil
}

// spareRoot is where relocate puts the cluster of DataDir: one directory
// per DataDir, named after it and a hash of its path so that two checkouts
// never share a cluster.
func (c *cluster) spareRoot() string {
	sum := sha256.Sum256([]byte(filepath.Clean(c.dataDir)))
	return filepath.Join(c.spareDir, filepath.Base(c.dataDir)+"-"+hex.EncodeToString(sum[:4]))
}

// relocate moves the cluster of an unreachable DataDir to spareRoot and
// makes DataDir a symbolic link to it, so that DataDir still names the
// cluster (rm -rf of the checkout leaves the cluster in SpareDir, though).
// It only does so while DataDir holds no cluster: one that exists is the
// user's data, and the error says which setting puts it elsewhere.
func (c *cluster) relocate(unreachable error) error {
	spare := c.spareRoot()
	cannot := func(why string) error {
		return fmt.Errorf("%w; %s. Set %s to a directory that user can reach, such as %s", unreachable, why, c.setting, spare)
	}
	if c.root != c.dataDir {
		return cannot(fmt.Sprintf("%s is a symbolic link to it", c.dataDir))
	}
	if entries, err := os.ReadDir(c.dataDir); err == nil {
		for _, e := range entries {
			if e.Name() != lockName && e.Name() != logName {
				return cannot(fmt.Sprintf("it holds %s, so pgboot does not move it", filepath.Join(c.dataDir, e.Name())))
			}
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return cannot(err.Error())
	}
	if err := os.MkdirAll(c.spareDir, 0o755); err != nil {
		return cannot(err.Error())
	}
	if err := checkReachable(spare, c.owner); err != nil {
		return cannot(fmt.Sprintf("nor can it reach SpareDir (%v)", err))
	}
	if err := os.Mkdir(spare, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
		return cannot(err.Error())
	}
	if err := os.MkdirAll(filepath.Dir(c.dataDir), 0o755); err != nil {
		return cannot(err.Error())
	}
	// The remains of runs that failed on the unreachable directory.
	for _, name := range []string{lockName, logName} {
		_ = os.Remove(filepath.Join(c.dataDir, name))
	}
	_ = os.Remove(c.dataDir) // only if empty
	if err := os.Symlink(spare, c.dataDir); err != nil {
		// Another process may have linked it first.
		if target, err2 := filepath.EvalSymlinks(c.dataDir); err2 != nil || !samePath(target, spare) {
			return cannot(fmt.Sprintf("linking it to %s failed: %v", spare, err))
		}
	}
	c.log.Info(fmt.Sprintf("%v; the cluster lives in %s instead, and %s links to it (set %s to choose another place)",
		unreachable, spare, c.dataDir, c.setting))
	c.setRoot(spare)
	return nil
}

// checkReachable fails when owner could not get to dir because a directory
// above it is not searchable by owner (t.TempDir() directories, for one, are
// 0700 and owned by root). initdb would fail on it with a vaguer message.
func checkReachable(dir string, owner *osUser) error {
	for p := filepath.Dir(dir); ; p = filepath.Dir(p) {
		fi, err := os.Stat(p)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("pgboot: stat %s: %w", p, err)
		}
		if err == nil {
			st, ok := fi.Sys().(*syscall.Stat_t)
			if ok && !searchable(fi.Mode().Perm(), st.Uid, st.Gid, owner) {
				return fmt.Errorf("pgboot: PostgreSQL runs as user %q (we are root), which cannot reach %s because %s (mode %s, uid %d) is not searchable by it",
					owner.name, dir, p, fi.Mode().Perm(), st.Uid)
			}
		}
		if p == filepath.Dir(p) {
			return nil
		}
	}
}

func searchable(perm os.FileMode, uid, gid uint32, u *osUser) bool {
	switch {
	case uid == u.uid:
		return perm&0o100 != 0
	case gid == u.gid || slices.Contains(u.groups, gid):
		return perm&0o010 != 0
	default:
		return perm&0o001 != 0
	}
}

// repairOwnership makes every file of the cluster belong to its owner. A
// cluster made by another user cannot start: postgres refuses a pgdata it
// does not own, and pg_ctl cannot write the log. That happens when the
// owner changes, as when a root machine gains the "postgres" user by
// installing PostgreSQL after a cluster was made as "nobody". As root we
// hand the files over, keeping the data; otherwise the error says how.
func (c *cluster) repairOwnership() error {
	uid, gid := c.ownerIDs()
	path, foreign, found := c.foreignFile(uid)
	if !found {
		return nil
	}
	if c.postmasterAlive() {
		return fmt.Errorf("pgboot: a server runs from %s but does not answer, and its files belong to another user; stop it (%s) and try again",
			c.pgdata, (&Server{DataDir: c.dataDir}).StopHint())
	}
	other := userName(foreign)
	if os.Geteuid() != 0 {
		return fmt.Errorf("pgboot: the dev cluster in %s belongs to %s (%s does), not to you (%s): another user made it, probably root. Give it back (sudo chown -R %d:%d %s), delete it (its data is lost), or set %s to another directory",
			c.dataDir, other, path, c.ownerName(), uid, gid, shellQuote(c.root), c.setting)
	}
	err := filepath.WalkDir(c.root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(path, uid, gid)
	})
	if err != nil {
		return fmt.Errorf("pgboot: hand the dev cluster in %s to user %s: %w", c.dataDir, c.ownerName(), err)
	}
	c.log.Info(fmt.Sprintf("pgboot: the dev cluster in %s belonged to %s; handed it to user %s, who runs PostgreSQL now", c.dataDir, other, c.ownerName()))
	return nil
}

// foreignFile returns a file of the cluster that belongs to another uid
// than uid, and that uid. It looks at the files that a change of owner
// leaves behind; the whole tree is handed over when one of them does not
// match.
func (c *cluster) foreignFile(uid int) (path string, foreign uint32, found bool) {
	for _, p := range []string{c.root, c.pgdata, c.logFile, filepath.Join(c.root, markerName), filepath.Join(c.pgdata, "PG_VERSION"), filepath.Join(c.pgdata, "global")} {
		if fi, err := os.Lstat(p); err == nil {
			if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Uid) != uid {
				return p, st.Uid, true
			}
		}
	}
	return "", 0, false
}

// userName names uid for messages.
func userName(uid uint32) string {
	if u, err := user.LookupId(strconv.Itoa(int(uid))); err == nil {
		return fmt.Sprintf("user %s (uid %d)", u.Username, uid)
	}
	return fmt.Sprintf("uid %d", uid)
}
