package notify

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"mime"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"net/smtp"
	"net/textproto"
	"slices"
	"strings"
	"time"
)

// sendEmail delivers one plain-text message over SMTP. STARTTLS is
// required (peer verified against Options.RootCAs) unless the channel says
// starttls=none, which validation allows only for loopback relays and which
// is re-checked here against the address actually connected to. AUTH PLAIN
// is only ever sent inside TLS.
func (n *Notifier) sendEmail(ctx context.Context, cfg, secrets map[string]string, subject, text string, now time.Time) result {
	r := result{attempts: 1}
	fail := func(err error) result {
		r.err = err
		var te *textproto.Error
		if errors.As(err, &te) {
			r.status = fmt.Sprintf("%d %s", te.Code, oneLine(te.Msg, 200))
		} else {
			r.status = oneLine(err.Error(), 500)
		}
		return r
	}
	host, addr := cfg["smtp_host"], hostPort(cfg)
	msg, from, to, err := buildMessage(cfg, subject, text, now)
	if err != nil {
		return fail(err)
	}
	conn, err := dialer(n.o.AllowNets, n.o.Timeout).DialContext(ctx, "tcp", addr)
	if err != nil {
		return fail(fmt.Errorf("smtp %s: %w", addr, err))
	}
	defer conn.Close()
	// The whole session shares one deadline, and cancelling ctx closes the
	// connection, so a stalled server cannot hold the sender.
	deadline := time.Now().Add(2 * n.o.Timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	_ = conn.SetDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()

	plain := cfg["starttls"] == "none"
	if ta, ok := conn.RemoteAddr().(*net.TCPAddr); plain && (!ok || !ta.IP.IsLoopback()) {
		return fail(fmt.Errorf("smtp %s: starttls=none is allowed only for a loopback relay, but connected to %s", addr, conn.RemoteAddr()))
	}
	c, err := smtp.NewClient(conn, host)
	if err != nil {
		return fail(fmt.Errorf("smtp %s: greeting: %w", addr, err))
	}
	defer c.Close()
	if err := c.Hello(n.helo); err != nil {
		return fail(fmt.Errorf("smtp %s: EHLO: %w", addr, err))
	}
	if !plain {
		if ok, _ := c.Extension("STARTTLS"); !ok {
			return fail(fmt.Errorf("smtp %s offers no STARTTLS; refusing to send in clear text (starttls=none is only for loopback relays)", addr))
		}
		if err := c.StartTLS(&tls.Config{ServerName: host, RootCAs: n.o.RootCAs, MinVersion: tls.VersionTLS12}); err != nil {
			return fail(fmt.Errorf("smtp %s: STARTTLS: %w", addr, err))
		}
	}
	if user := cfg["username"]; user != "" {
		if _, tlsOn := c.TLSConnectionState(); !tlsOn {
			return fail(fmt.Errorf("smtp %s: refusing AUTH without TLS", addr))
		}
		ok, mechs := c.Extension("AUTH")
		if !ok || !slices.Contains(strings.Fields(strings.ToUpper(mechs)), "PLAIN") {
			return fail(fmt.Errorf("smtp %s does not offer AUTH PLAIN (offers %q)", addr, mechs))
		}
		if err := c.Auth(smtp.PlainAuth("", user, secrets["password"], host)); err != nil {
			return fail(fmt.Errorf("smtp %s: AUTH as %s: %w", addr, user, err))
		}
	}
	if err := c.Mail(from); err != nil {
		return fail(fmt.Errorf("smtp %s: MAIL FROM: %w", addr, err))
	}
	for _, rcpt := range to {
		if err := c.Rcpt(rcpt); err != nil {
			return fail(fmt.Errorf("smtp %s: RCPT TO %s: %w", addr, rcpt, err))
		}
	}
	w, err := c.Data()
	if err != nil {
		return fail(fmt.Errorf("smtp %s: DATA: %w", addr, err))
	}
	if _, err := w.Write(msg); err != nil {
		return fail(fmt.Errorf("smtp %s: message: %w", addr, err))
	}
	if err := w.Close(); err != nil {
		return fail(fmt.Errorf("smtp %s: message refused: %w", addr, err))
	}
	r.ok, r.status = true, "250 accepted"
	_ = c.Quit() // the message is accepted; a failed QUIT changes nothing
	return r
}

// buildMessage renders an RFC 5322 message: From, To, Subject (encoded
// word when not ASCII), Date, Message-ID, MIME text/plain UTF-8 in
// quoted-printable. It also returns the envelope sender and recipients.
func buildMessage(cfg map[string]string, subject, text string, now time.Time) (msg []byte, from string, to []string, err error) {
	fa, err := mail.ParseAddress(cfg["from"])
	if err != nil {
		return nil, "", nil, fmt.Errorf("settings.from %q: %w", cfg["from"], err)
	}
	for _, part := range strings.Split(cfg["to"], ",") {
		if part = strings.TrimSpace(part); part != "" {
			a, err := mail.ParseAddress(part)
			if err != nil {
				return nil, "", nil, fmt.Errorf("settings.to %q: %w", part, err)
			}
			to = append(to, a.Address)
		}
	}
	if len(to) == 0 {
		return nil, "", nil, errors.New("settings.to: no recipient")
	}
	var id [16]byte
	_, _ = rand.Read(id[:])
	domain := "vigil.invalid"
	if i := strings.LastIndexByte(fa.Address, '@'); i >= 0 && i < len(fa.Address)-1 {
		domain = fa.Address[i+1:]
	}
	var b bytes.Buffer
	hdr := func(k, v string) { b.WriteString(k + ": " + v + "\r\n") }
	hdr("From", fa.String())
	hdr("To", strings.Join(to, ", "))
	hdr("Subject", mime.QEncoding.Encode("utf-8", oneLine(subject, 250)))
	hdr("Date", now.Format(time.RFC1123Z))
	hdr("Message-ID", "<"+hex.EncodeToString(id[:])+"@"+domain+">")
	hdr("MIME-Version", "1.0")
	hdr("Content-Type", "text/plain; charset=utf-8")
	hdr("Content-Transfer-Encoding", "quoted-printable")
	hdr("Auto-Submitted", "auto-generated")
	b.WriteString("\r\n")
	qp := quotedprintable.NewWriter(&b)
	if _, err := qp.Write([]byte(text)); err != nil {
		return nil, "", nil, fmt.Errorf("encode message body: %w", err)
	}
	if err := qp.Close(); err != nil {
		return nil, "", nil, fmt.Errorf("encode message body: %w", err)
	}
	if !bytes.HasSuffix(b.Bytes(), []byte("\r\n")) {
		b.WriteString("\r\n")
	}
	return b.Bytes(), fa.Address, to, nil
}
