package notify

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"io"
	"math/big"
	"mime"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"net/textproto"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

const smtpPassword = "smtp-Pa55word-never-logged"

// smtpServer is a small real SMTP server on 127.0.0.1 for the tests: it
// speaks EHLO, STARTTLS (when offered), AUTH PLAIN, MAIL, RCPT, DATA and
// QUIT, and records what it saw.
type smtpServer struct {
	l        net.Listener
	tlsConf  *tls.Config
	offerTLS bool

	mu       sync.Mutex
	commands []string // verbs in order, "STARTTLS" once the handshake succeeded
	authTLS  []bool   // for each AUTH: was the connection under TLS
	authRaw  []string // decoded AUTH PLAIN responses
	from     string
	rcpts    []string
	data     []byte
	wg       sync.WaitGroup
}

// selfSigned makes a certificate for 127.0.0.1 and the pool that trusts it.
func selfSigned(t *testing.T) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "smtp test"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: cert}, pool
}

func newSMTPServer(t *testing.T, cert tls.Certificate, offerTLS bool) *smtpServer {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &smtpServer{l: l, offerTLS: offerTLS, tlsConf: &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for i := 0; i < 20; i++ { // bounded: no test sends more
			c, err := l.Accept()
			if err != nil {
				return
			}
			s.wg.Add(1)
			go func() { defer s.wg.Done(); s.serve(c) }()
		}
	}()
	t.Cleanup(func() { l.Close(); s.wg.Wait() })
	return s
}

func (s *smtpServer) port() string {
	return strconv.Itoa(s.l.Addr().(*net.TCPAddr).Port)
}

func (s *smtpServer) note(f func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f()
}

func (s *smtpServer) serve(c net.Conn) {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	tp := textproto.NewConn(c)
	inTLS := false
	reply := func(lines ...string) {
		for i, l := range lines {
			sep := "-"
			if i == len(lines)-1 {
				sep = " "
			}
			_ = tp.PrintfLine("%s%s%s", l[:3], sep, l[3:])
		}
	}
	reply("220 test.local ESMTP")
	for i := 0; i < 100; i++ {
		line, err := tp.ReadLine()
		if err != nil {
			return
		}
		verb, arg, _ := strings.Cut(line, " ")
		verb = strings.ToUpper(verb)
		s.note(func() { s.commands = append(s.commands, verb) })
		switch verb {
		case "EHLO":
			lines := []string{"250test.local"}
			if s.offerTLS && !inTLS {
				lines = append(lines, "250STARTTLS")
			}
			lines = append(lines, "250AUTH PLAIN", "2508BITMIME")
			reply(lines...)
		case "STARTTLS":
			reply("220 go ahead")
			tc := tls.Server(c, s.tlsConf)
			if err := tc.Handshake(); err != nil {
				return
			}
			inTLS = true
			s.note(func() { s.commands = append(s.commands, "TLS-UP") })
			tp = textproto.NewConn(tc)
		case "AUTH":
			mech, resp, _ := strings.Cut(arg, " ")
			raw, err := base64.StdEncoding.DecodeString(resp)
			if strings.ToUpper(mech) != "PLAIN" || err != nil {
				reply("504 unsupported")
				continue
			}
			s.note(func() { s.authTLS = append(s.authTLS, inTLS); s.authRaw = append(s.authRaw, string(raw)) })
			reply("235 ok")
		case "MAIL":
			s.note(func() { s.from = arg })
			reply("250 ok")
		case "RCPT":
			s.note(func() { s.rcpts = append(s.rcpts, arg) })
			reply("250 ok")
		case "DATA":
			reply("354 end with .")
			b, err := tp.ReadDotBytes()
			if err != nil {
				return
			}
			s.note(func() { s.data = b })
			reply("250 queued as 1")
		case "QUIT":
			reply("221 bye")
			return
		default:
			reply("502 not implemented")
		}
	}
}

func (s *smtpServer) snapshot() smtpServer {
	s.mu.Lock()
	defer s.mu.Unlock()
	return smtpServer{commands: append([]string(nil), s.commands...), authTLS: append([]bool(nil), s.authTLS...),
		authRaw: append([]string(nil), s.authRaw...), from: s.from, rcpts: append([]string(nil), s.rcpts...), data: s.data}
}

func emailInput(port string, extra map[string]string) ChannelInput {
	s := map[string]string{
		"smtp_host": "127.0.0.1", "smtp_port": port, "from": "Vigil <vigil@example.test>",
		"to": "ops@example.test, Security <sec@example.test>", "username": "mailer", "password": smtpPassword,
	}
	for k, v := range extra {
		if v == "" {
			delete(s, k)
		} else {
			s[k] = v
		}
	}
	return ChannelInput{Name: "mail", Kind: KindEmail, Settings: s}
}

func TestEmailSTARTTLSAuthAndMessage(t *testing.T) {
	ctx := context.Background()
	cert, pool := selfSigned(t)
	srv := newSMTPServer(t, cert, true)
	e := newEnv(t, func(o *Options) { o.RootCAs = pool })
	ch, err := e.n.Create(ctx, emailInput(srv.port(), nil), "admin")
	if err != nil {
		t.Fatal(err)
	}
	v := e.n.View(ch)
	if v.Settings["password"] != Mask || v.Settings["username"] != "mailer" || v.Settings["smtp_port"] != srv.port() {
		t.Fatalf("view settings %v", v.Settings)
	}
	al := sampleAlert()
	al.Title = "Prüfung sshd_permit_root failing on web-1"
	a := raise(t, e.st, al)
	e.n.Notify(ctx, EventOpened, a)

	got := srv.snapshot()
	tlsAt, authAt := indexOf(got.commands, "TLS-UP"), indexOf(got.commands, "AUTH")
	if tlsAt < 0 || authAt < 0 || tlsAt > authAt {
		t.Fatalf("commands %v: want STARTTLS completed before AUTH", got.commands)
	}
	if len(got.authTLS) != 1 || !got.authTLS[0] {
		t.Fatalf("AUTH outside TLS: %v", got.authTLS)
	}
	if got.authRaw[0] != "\x00mailer\x00"+smtpPassword {
		t.Fatalf("AUTH PLAIN response %q", got.authRaw[0])
	}
	if !strings.Contains(got.from, "<vigil@example.test>") || len(got.rcpts) != 2 || !strings.Contains(got.rcpts[1], "<sec@example.test>") {
		t.Fatalf("envelope from %q rcpts %v", got.from, got.rcpts)
	}
	msg, err := mail.ReadMessage(strings.NewReader(string(got.data)))
	if err != nil {
		t.Fatalf("message does not parse: %v\n%s", err, got.data)
	}
	subject, err := new(mime.WordDecoder).DecodeHeader(msg.Header.Get("Subject"))
	if err != nil || subject != "[Vigil] HIGH opened: Prüfung sshd_permit_root failing on web-1" {
		t.Errorf("Subject %q (%v)", subject, err)
	}
	if from, err := mail.ParseAddress(msg.Header.Get("From")); err != nil || from.Address != "vigil@example.test" {
		t.Errorf("From %q", msg.Header.Get("From"))
	}
	if to, err := msg.Header.AddressList("To"); err != nil || len(to) != 2 {
		t.Errorf("To %q: %v", msg.Header.Get("To"), err)
	}
	if _, err := msg.Header.Date(); err != nil {
		t.Errorf("Date %q: %v", msg.Header.Get("Date"), err)
	}
	if id := msg.Header.Get("Message-Id"); !strings.HasPrefix(id, "<") || !strings.HasSuffix(id, "@example.test>") {
		t.Errorf("Message-ID %q", id)
	}
	if ct := msg.Header.Get("Content-Type"); ct != "text/plain; charset=utf-8" {
		t.Errorf("Content-Type %q", ct)
	}
	if msg.Header.Get("Content-Transfer-Encoding") != "quoted-printable" || msg.Header.Get("Mime-Version") != "1.0" {
		t.Errorf("MIME headers %v", msg.Header)
	}
	body, err := io.ReadAll(quotedprintable.NewReader(msg.Body))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"HIGH opened: Prüfung", "sshd_permit_root", "env=prod", "https://vigil.example.test/alerts/" + strconv.FormatInt(a.ID, 10), `"host": "web-1"`} {
		if !strings.Contains(string(body), want) {
			t.Errorf("body lacks %q:\n%s", want, body)
		}
	}
	ds, err := e.st.Deliveries(ctx, ch.ID, 0)
	if err != nil || len(ds) != 1 || !ds[0].OK || ds[0].Attempts != 1 || ds[0].Event != EventOpened {
		t.Fatalf("deliveries %+v, %v", ds, err)
	}
	assertNoSecret(t, "logs", e.logs.String())
	assertNoSecret(t, "Config", strings.Join(mapValues(ch.Config), " "))
}

func TestEmailRefusesWithoutSTARTTLS(t *testing.T) {
	ctx := context.Background()
	cert, pool := selfSigned(t)
	srv := newSMTPServer(t, cert, false)
	e := newEnv(t, func(o *Options) { o.RootCAs = pool })
	ch, err := e.n.Create(ctx, emailInput(srv.port(), nil), "admin")
	if err != nil {
		t.Fatal(err)
	}
	d, err := e.n.Test(ctx, ch.ID)
	if err != nil {
		t.Fatal(err)
	}
	if d.OK || !strings.Contains(d.Status, "STARTTLS") {
		t.Fatalf("delivery %+v: want refusal naming STARTTLS", d)
	}
	got := srv.snapshot()
	if len(got.authRaw) != 0 || got.from != "" || got.data != nil {
		t.Fatalf("sent in clear: commands %v", got.commands)
	}
	assertNoSecret(t, "logs", e.logs.String())
}

func TestEmailUntrustedCertificate(t *testing.T) {
	ctx := context.Background()
	cert, _ := selfSigned(t)
	_, otherPool := selfSigned(t)
	srv := newSMTPServer(t, cert, true)
	e := newEnv(t, func(o *Options) { o.RootCAs = otherPool })
	ch, err := e.n.Create(ctx, emailInput(srv.port(), nil), "admin")
	if err != nil {
		t.Fatal(err)
	}
	d, err := e.n.Test(ctx, ch.ID)
	if err != nil {
		t.Fatal(err)
	}
	if d.OK || !strings.Contains(d.Status, "STARTTLS") {
		t.Fatalf("delivery %+v: want certificate refusal", d)
	}
	if got := srv.snapshot(); len(got.authRaw) != 0 {
		t.Fatal("password sent to an unverified server")
	}
}

func TestEmailPlainLoopbackRelay(t *testing.T) {
	ctx := context.Background()
	cert, _ := selfSigned(t)
	srv := newSMTPServer(t, cert, false)
	e := newEnv(t, nil)
	ch, err := e.n.Create(ctx, emailInput(srv.port(), map[string]string{"starttls": "none", "username": "", "password": ""}), "admin")
	if err != nil {
		t.Fatal(err)
	}
	d, err := e.n.Test(ctx, ch.ID)
	if err != nil || !d.OK || d.Event != EventTest {
		t.Fatalf("delivery %+v, %v", d, err)
	}
	got := srv.snapshot()
	if indexOf(got.commands, "STARTTLS") >= 0 || indexOf(got.commands, "AUTH") >= 0 || got.data == nil {
		t.Fatalf("commands %v", got.commands)
	}
	msg, err := mail.ReadMessage(strings.NewReader(string(got.data)))
	if err != nil {
		t.Fatal(err)
	}
	if s := msg.Header.Get("Subject"); !strings.HasPrefix(s, "[Vigil] LOW test: Test notification") {
		t.Errorf("test subject %q", s)
	}
}

func indexOf(list []string, s string) int {
	for i, v := range list {
		if v == s {
			return i
		}
	}
	return -1
}

func mapValues(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for _, v := range m {
		out = append(out, v)
	}
	return out
}
