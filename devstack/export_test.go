package devstack

// MaintenanceRounds is how many maintenance rounds the stack has begun.
func (s *Stack) MaintenanceRounds() int64 { return s.maintainer.rounds.Load() }

// BeforeCompaction makes the stack's maintainer call fn once, when a
// compaction is due, right before it.
func BeforeCompaction(s *Stack, fn func()) { s.maintainer.beforeCompact.Store(&fn) }
