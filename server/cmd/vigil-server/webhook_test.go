package main

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"
)

// webhookReceiver is a real HTTP endpoint on 127.0.0.1 that records what
// the server posts to it.
type webhookReceiver struct {
	srv  *httptest.Server
	mu   sync.Mutex
	hits []webhookHit
}

type webhookHit struct {
	body      []byte
	event     string
	timestamp string
	signature string
}

func newWebhookReceiver(t *testing.T) *webhookReceiver {
	t.Helper()
	r := &webhookReceiver{}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		b, _ := io.ReadAll(io.LimitReader(req.Body, 1<<20))
		r.mu.Lock()
		r.hits = append(r.hits, webhookHit{body: b, event: req.Header.Get("X-Vigil-Event"),
			timestamp: req.Header.Get("X-Vigil-Timestamp"), signature: req.Header.Get("X-Vigil-Signature")})
		r.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

// webhookAlert is one alert event as a webhook carries it: alone, or as
// one entry of a digest (when an evaluation opens more than ten alerts for
// the channel).
type webhookAlert struct {
	Event string `json:"event"`
	Alert struct {
		ID       int64  `json:"id"`
		Kind     string `json:"kind"`
		Key      string `json:"key"`
		Severity string `json:"severity"`
		HostID   int64  `json:"host_id"`
		RuleID   string `json:"rule_id"`
	} `json:"alert"`
}

// events returns the alert events a delivery carries.
func (h webhookHit) events() []webhookAlert {
	var msg struct {
		webhookAlert
		Digest struct {
			Alerts []webhookAlert `json:"alerts"`
		} `json:"digest"`
	}
	if json.Unmarshal(h.body, &msg) != nil {
		return nil
	}
	if msg.Event == "digest" {
		return msg.Digest.Alerts
	}
	return []webhookAlert{msg.webhookAlert}
}

// received returns the deliveries received so far, in arrival order.
func (r *webhookReceiver) received() []webhookHit {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]webhookHit(nil), r.hits...)
}

// wantSignature is the X-Vigil-Signature a delivery signed with key
// carries: HMAC-SHA256 over "timestamp.body", computed here independently
// of the server's code.
func (h webhookHit) wantSignature(key string) string {
	mac := hmac.New(sha256.New, []byte(key))
	mac.Write([]byte(h.timestamp + "."))
	mac.Write(h.body)
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}

// wait returns the first alert event (in arrival order) match accepts,
// with the delivery that carried it, within limit; it fails the test when
// none arrives.
func (r *webhookReceiver) wait(t *testing.T, limit time.Duration, what string, match func(webhookAlert) bool) (webhookHit, webhookAlert) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		hits := r.received()
		for _, h := range hits {
			for _, a := range h.events() {
				if match(a) {
					return h, a
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no webhook delivery %s within %s; got %d deliveries", what, limit, len(hits))
		}
		time.Sleep(250 * time.Millisecond)
	}
}
