package devstack

// MaintenanceRounds is how many maintenance rounds the stack has begun.
func (s *Stack) MaintenanceRounds() int64 { return s.maintainer.rounds.Load() }
