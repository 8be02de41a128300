//go:build unix

package devstack

import "syscall"

// diskFree is how many bytes the file system of dir has free for this
// user.
func diskFree(dir string) (uint64, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, err
	}
	return uint64(st.Bavail) * uint64(st.Bsize), nil
}
