package messaging

import "time"

// WithRecord gives external tests the context of a handler of a consumed
// record, whose writes do not wait for their commit.
var WithRecord = withRecord

// DuringCommit has p call f in each commit, once the commit has begun and
// before it ends.
func DuringCommit(p *TxnProducer, f func()) { p.duringCommit = f }

// SetAwaitCommit sets how long p's writes outside a handler wait for their
// commit.
func SetAwaitCommit(p *TxnProducer, d time.Duration) { p.awaitCommit = d }
