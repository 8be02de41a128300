package messaging

import "time"

// SetAwaitCommit sets how long s's writes outside a handler wait for their
// commit.
func SetAwaitCommit(s *Session, d time.Duration) { s.awaitCommit = d }
