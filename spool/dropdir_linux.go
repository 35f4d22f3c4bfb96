package spool

import (
	"io/fs"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// dropDir is the maildrop directory Drop works in, opened with O_PATH:
// that needs no permission on the directory itself, and every later call
// (create, rename, remove) is made relative to the descriptor, so a
// caller who swaps a component of the spool path meanwhile cannot point
// them at another directory. The last component is opened with
// O_NOFOLLOW: maildrop/ is an entry of the spool directory, which its
// owner controls, and root's own sendmail drops there too; a symlink the
// owner put in its place must not make root create a file wherever it
// points.
type dropDir struct {
	fd   int
	path string
}

func openDropDir(path string) (*dropDir, error) {
	for {
		fd, err := unix.Open(path, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err == unix.EINTR {
			continue
		}
		if err == unix.ENOTDIR || err == unix.ELOOP {
			var st unix.Stat_t
			if unix.Lstat(path, &st) == nil && st.Mode&unix.S_IFMT == unix.S_IFLNK {
				return nil, &fs.PathError{Op: "open", Path: path, Err: errMaildropSymlink}
			}
		}
		if err != nil {
			return nil, &fs.PathError{Op: "open", Path: path, Err: err}
		}
		return &dropDir{fd: fd, path: path}, nil
	}
}

// gid is the directory's group.
func (d *dropDir) gid() (uint32, error) {
	var st unix.Stat_t
	if err := unix.Fstat(d.fd, &st); err != nil {
		return 0, &fs.PathError{Op: "stat", Path: d.path, Err: err}
	}
	return st.Gid, nil
}

// create makes name with O_CREAT|O_EXCL|O_NOFOLLOW, read-write.
func (d *dropDir) create(name string, mode uint32) (int, error) {
	for {
		fd, err := unix.Openat(d.fd, name, unix.O_RDWR|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, mode)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return -1, &fs.PathError{Op: "create", Path: filepath.Join(d.path, name), Err: err}
		}
		return fd, nil
	}
}

// rename renames old to new in the directory without replacing a file.
func (d *dropDir) rename(old, new string) error {
	err := unix.Renameat2(d.fd, old, d.fd, new, unix.RENAME_NOREPLACE)
	if err == unix.EINVAL || err == unix.ENOSYS {
		// No RENAME_NOREPLACE here: the name is unique (time, pid and 64
		// random bits), and the sticky bit protects other users' files.
		err = unix.Renameat(d.fd, old, d.fd, new)
	}
	if err != nil {
		return &fs.PathError{Op: "rename", Path: filepath.Join(d.path, old), Err: err}
	}
	return nil
}

// remove unlinks name in the directory.
func (d *dropDir) remove(name string) error {
	if err := unix.Unlinkat(d.fd, name, 0); err != nil {
		return &fs.PathError{Op: "remove", Path: filepath.Join(d.path, name), Err: err}
	}
	return nil
}

func (d *dropDir) close() { unix.Close(d.fd) }

// freeOn is the space available to unprivileged users on the file system
// of f; ok is false where it cannot be measured.
func freeOn(f *os.File) (free int64, ok bool, err error) {
	var st unix.Statfs_t
	if err := unix.Fstatfs(int(f.Fd()), &st); err != nil {
		return 0, false, &fs.PathError{Op: "statfs", Path: f.Name(), Err: err}
	}
	return int64(st.Bavail) * int64(st.Bsize), true, nil
}
