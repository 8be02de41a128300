package store

// RecentSize is how many keys each of a store's two generations in memory
// holds before the older one goes to the DB.
const RecentSize = recentSize
