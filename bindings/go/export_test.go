package switchboard

import "encoding/json"

// AggregateDaysFromJSON reads rows as sb_aggregates gives them, "days"'
// items (for the tests: no engine writes a row without a call offered).
func AggregateDaysFromJSON(b []byte) ([]AggregateDay, error) {
	var days []aggrJSON
	if err := json.Unmarshal(b, &days); err != nil {
		return nil, err
	}
	return aggregateDays(days), nil
}

// Closing reports whether a Close waits for calls in flight (for the tests).
func Closing(e *Engine) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.closing
}

// LiveResults returns how many C results the engine holds, in its pool or in
// use (for the tests).
func LiveResults(e *Engine) int {
	e.poolMu.Lock()
	defer e.poolMu.Unlock()
	return len(e.all)
}

// Borrow takes n results at once, as n calls in flight on as many goroutines
// would, then gives them all back (for the tests).
func Borrow(e *Engine, n int) error {
	var ends []func()
	defer func() {
		for _, end := range ends {
			end()
		}
	}()
	for i := 0; i < n; i++ {
		r, err := e.begin()
		if err != nil {
			return err
		}
		ends = append(ends, func() { e.end(r) })
	}
	return nil
}

// PoolSize is how many idle results an engine keeps.
const PoolSize = poolSize
