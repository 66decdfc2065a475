package notify

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/go-retryablehttp"
)

// result is the outcome of one delivery, after any retries.
type result struct {
	ok       bool
	attempts int
	status   string // HTTP status, SMTP reply, or the (URL-free) error
	err      error
	skipped  bool // not attempted: the channel's breaker is open
}

// newHTTPClient returns the client all HTTP deliveries share: guarded
// dialer, no proxy from the environment (a proxy would make the guard see
// the proxy's address instead of the receiver's), no redirects (a 3xx is a
// failure: following it would re-send the signed body somewhere else), one
// attempt bounded by timeout.
func newHTTPClient(o Options) *http.Client {
	d := dialer(o.AllowNets, min(o.Timeout, 5*time.Second))
	tr := &http.Transport{
		Proxy:                 nil,
		DialContext:           d.DialContext,
		TLSClientConfig:       &tls.Config{RootCAs: o.RootCAs, MinVersion: tls.VersionTLS12},
		TLSHandshakeTimeout:   o.Timeout,
		ResponseHeaderTimeout: o.Timeout,
		MaxIdleConns:          16,
		MaxIdleConnsPerHost:   2,
		IdleConnTimeout:       90 * time.Second,
		ForceAttemptHTTP2:     true,
	}
	return &http.Client{
		Transport:     tr,
		Timeout:       o.Timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// retryable says whether a failed attempt is worth repeating: connection
// errors, 429 and 5xx are; a refused address, a certificate that does not
// verify, an expired context and every other status are not.
func retryable(ctx context.Context, resp *http.Response, err error) (bool, error) {
	if ctx.Err() != nil {
		return false, nil
	}
	if err != nil {
		var ge *GuardError
		var ce *tls.CertificateVerificationError
		var ua x509.UnknownAuthorityError
		var hn x509.HostnameError
		var ci x509.CertificateInvalidError
		if errors.As(err, &ge) || errors.As(err, &ce) || errors.As(err, &ua) || errors.As(err, &hn) || errors.As(err, &ci) {
			return false, nil
		}
		return true, nil
	}
	return resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500, nil
}

// Backoff is the wait before retry attempt+1: exponential from waitMin,
// with jitter in the upper half, honouring a Retry-After (seconds) on 429
// and 503, and always within [waitMin, waitMax].
func Backoff(waitMin, waitMax time.Duration, attempt int, resp *http.Response) time.Duration {
	if waitMax < waitMin {
		waitMax = waitMin
	}
	if resp != nil && (resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable) {
		if s, err := strconv.Atoi(strings.TrimSpace(resp.Header.Get("Retry-After"))); err == nil && s >= 0 {
			return min(max(time.Duration(s)*time.Second, waitMin), waitMax)
		}
	}
	d := waitMax
	if attempt < 30 && waitMin<<attempt > 0 && waitMin<<attempt < waitMax {
		d = waitMin << attempt
	}
	if half := int64(d / 2); half > 0 {
		d = time.Duration(half + rand.Int64N(half+1))
	}
	return min(max(d, waitMin), waitMax)
}

// post sends body to rawURL with retries. It never returns or logs the
// URL: Slack and webhook URLs carry credentials in their path.
func (n *Notifier) post(ctx context.Context, rawURL string, body []byte, header http.Header) result {
	var r result
	host := urlHost(rawURL)
	c := &retryablehttp.Client{
		HTTPClient:   n.http,
		Logger:       nil, // its messages name the URL; we log the host ourselves
		RetryWaitMin: n.o.RetryWaitMin,
		RetryWaitMax: n.o.RetryWaitMax,
		RetryMax:     n.o.RetryMax,
		CheckRetry:   retryable,
		Backoff:      Backoff,
		ErrorHandler: retryablehttp.PassthroughErrorHandler,
		RequestLogHook: func(_ retryablehttp.Logger, _ *http.Request, i int) {
			r.attempts = i + 1
			if i > 0 {
				n.o.Logger.DebugContext(ctx, "notification retry", "host", host, "attempt", i+1)
			}
		},
	}
	req, err := retryablehttp.NewRequestWithContext(ctx, http.MethodPost, rawURL, body)
	if err != nil {
		r.err = fmt.Errorf("build request for %s: %w", host, redact(err, rawURL))
		r.status = r.err.Error()
		return r
	}
	req.Header = header
	resp, err := c.Do(req)
	if err != nil {
		r.err = redact(err, rawURL)
		r.status = r.err.Error()
		return r
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	r.status = resp.Status
	r.ok = resp.StatusCode >= 200 && resp.StatusCode < 300
	if !r.ok {
		r.err = errors.New("receiver " + host + " answered " + resp.Status)
	}
	return r
}

// redactedError is an error whose message no longer holds a secret URL;
// the cause stays reachable for errors.As (GuardError, certificates).
type redactedError struct {
	msg   string
	cause error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.cause }

// redact returns err without rawURL in its message: net/http wraps errors
// in *url.Error, whose message quotes the whole URL.
func redact(err error, rawURL string) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	msg := err.Error()
	if rawURL != "" {
		msg = strings.ReplaceAll(msg, rawURL, Mask)
	}
	if u, perr := url.Parse(rawURL); perr == nil {
		if len(u.Path) > 1 {
			msg = strings.ReplaceAll(msg, u.Path, "/"+Mask)
		}
		if u.RawQuery != "" {
			msg = strings.ReplaceAll(msg, u.RawQuery, Mask)
		}
	}
	if len(msg) > 500 {
		msg = strings.ToValidUTF8(msg[:500], "")
	}
	return &redactedError{msg: msg, cause: err}
}

// urlHost is the part of a secret URL that may be logged.
func urlHost(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		return "(unparsable url)"
	}
	return u.Host
}

// Sign returns the X-Vigil-Signature value for a webhook body sent at
// timestamp (unix seconds): "sha256=" + hex HMAC-SHA256 of
// timestamp + "." + body under the channel's hmac_secret. Receivers
// recompute it to authenticate the sender and bind the time.
func Sign(secret []byte, timestamp string, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(timestamp))
	m.Write([]byte("."))
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

func (n *Notifier) sendWebhook(ctx context.Context, secrets map[string]string, event string, payload []byte, now time.Time) result {
	ts := strconv.FormatInt(now.Unix(), 10)
	h := http.Header{}
	h.Set("Content-Type", "application/json")
	h.Set("User-Agent", "vigil-server")
	h.Set("X-Vigil-Event", event)
	h.Set("X-Vigil-Timestamp", ts)
	if s := secrets["hmac_secret"]; s != "" {
		h.Set("X-Vigil-Signature", Sign([]byte(s), ts, payload))
	}
	return n.post(ctx, secrets["url"], payload, h)
}

func (n *Notifier) sendSlack(ctx context.Context, secrets map[string]string, payload []byte) result {
	h := http.Header{}
	h.Set("Content-Type", "application/json")
	h.Set("User-Agent", "vigil-server")
	return n.post(ctx, secrets["url"], payload, h)
}
