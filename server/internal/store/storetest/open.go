package storetest

import (
	"io"
	"sync"
	"testing"
)

// OpenConcurrently opens a store n times at once, as replicas starting
// together do, and fails the test unless every open and close succeeds.
// The driver's own test then checks each migration was applied once.
func OpenConcurrently(t *testing.T, n int, open func() (io.Closer, error)) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := open()
			if err != nil {
				errs <- err
				return
			}
			errs <- s.Close()
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
}
