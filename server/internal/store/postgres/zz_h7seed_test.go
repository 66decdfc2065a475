package postgres

import (
	"context"
	"os"
	"testing"
	"time"
)

func TestH7Seed(t *testing.T) {
	url := os.Getenv("H7_URL")
	if url == "" {
		t.Skip()
	}
	s, err := Open(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	t0 := time.Now()
	if err := SeedHistory(context.Background(), s, 1000, 300, 90, time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)); err != nil {
		t.Fatal(err)
	}
	t.Log(time.Since(t0))
}
