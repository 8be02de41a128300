//go:build !linux

package system_test

import "os/exec"

// diesWithTheTests does nothing here: only Linux kills a child with its
// parent.
func diesWithTheTests(*exec.Cmd) {}
