//go:build race

package store_test

// raceDetector: the race detector drops sync.Pool items at random, so
// allocation counts that rely on a pool do not hold under it.
const raceDetector = true
