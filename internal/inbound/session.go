package inbound

// Sync runs f at the pipeline's end once every link message handed over
// before it is decided: a refresh's begin and End-of-RIB take their place
// among its signals. Call it from the subscription's goroutine (the
// session handler); after Stop, f is not run.
func (r *Receiver) Sync(f func()) {
	r.closing.RLock()
	defer r.closing.RUnlock()
	if r.closed {
		return
	}
	r.jobs <- job{sync: f}
}
