//go:build !unix

package main

import "time"

// processCPU is not measured here: getrusage is Unix's.
func processCPU() (time.Duration, bool) { return 0, false }
