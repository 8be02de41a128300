package saga

// Resuming reports whether a Resume of e runs, or waits for the
// transitions in flight to let it.
func Resuming[D any](e *Engine[D]) bool {
	if e.resuming.TryRLock() {
		e.resuming.RUnlock()
		return false
	}
	return true
}
