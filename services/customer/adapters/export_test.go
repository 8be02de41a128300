package adapters

// SetSummed sets what runs between a sum of what a customer holds and its
// keeping, and returns a func that unsets it.
func SetSummed(f func()) func() {
	summed = f
	return func() { summed = nil }
}
