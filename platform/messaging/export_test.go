package messaging

// WithRecord gives external tests the context of a handler of a consumed
// record, whose writes do not wait for their commit.
var WithRecord = withRecord
