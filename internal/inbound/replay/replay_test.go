package replay

import (
	"fmt"
	"runtime"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestGuardRemembersAndForgetsOldest(t *testing.T) {
	g := New(3)
	assert.False(t, g.Seen("s", "1"))
	for _, id := range []string{"1", "2", "3"} {
		g.Record("s", id)
	}
	assert.True(t, g.Seen("s", "1"))
	assert.False(t, g.Seen("t", "1"), "source is part of the key")
	assert.False(t, g.Seen("s1", ""), "source and id are delimited")
	g.Record("s", "1") // already there: no eviction
	assert.Equal(t, 3, g.Len())
	g.Record("s", "4")
	assert.False(t, g.Seen("s", "1"), "oldest forgotten")
	assert.True(t, g.Seen("s", "4"))
	assert.Equal(t, 3, g.Len())
}

func TestGuardMemoryIsBounded(t *testing.T) {
	const size = 1 << 16
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	g := New(size)
	for i := range 10 * size {
		g.Record("anfed://op-a/assurance", fmt.Sprint(i))
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	assert.Equal(t, size, g.Len())
	per := float64(after.HeapAlloc-before.HeapAlloc) / size
	t.Logf("%.1f bytes per remembered key", per)
	assert.Less(t, per, 96.0)
	runtime.KeepAlive(g)
}

func TestGuardConcurrent(t *testing.T) {
	g := New(1024)
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 1000 {
				g.Record(fmt.Sprint(w), fmt.Sprint(i))
				g.Seen(fmt.Sprint(w), fmt.Sprint(i))
			}
		}()
	}
	wg.Wait()
	assert.Equal(t, 1024, g.Len())
}
