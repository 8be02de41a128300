//go:build !unix

package devstack

import "errors"

// diskFree is unknown here: a compaction goes ahead as kfake alone would.
func diskFree(string) (uint64, error) { return 0, errors.ErrUnsupported }
