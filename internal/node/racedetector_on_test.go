//go:build race

package node_test

// raceDetector: the tests run under the race detector, which slows the
// nodes' pipelines several times over.
const raceDetector = true
