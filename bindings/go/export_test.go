package switchboard

// Closing reports whether a Close waits for calls in flight (for the tests).
func Closing(e *Engine) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.closing
}
