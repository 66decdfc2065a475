package password

import (
	"errors"
	"strings"
	"testing"
)

// fast keeps the malformed-input tests quick; the default parameters are
// exercised by TestHashVerifyDefault.
func fast() Params { return Params{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32} }

func TestHashVerifyDefault(t *testing.T) {
	h, err := Hash("correct horse battery staple")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(h, "$argon2id$v=19$m=65536,t=3,p=2$") {
		t.Fatalf("hash %q does not carry the default parameters", h)
	}
	p, err := ParamsOf(h)
	if err != nil {
		t.Fatal(err)
	}
	if p != DefaultParams() {
		t.Fatalf("ParamsOf = %+v, want %+v", p, DefaultParams())
	}
	ok, err := Verify("correct horse battery staple", h)
	if err != nil || !ok {
		t.Fatalf("Verify(right password) = %v, %v", ok, err)
	}
	ok, err = Verify("correct horse battery stapl", h)
	if err != nil || ok {
		t.Fatalf("Verify(wrong password) = %v, %v", ok, err)
	}
}

func TestSaltsDiffer(t *testing.T) {
	a, err := HashWith("same password here", fast())
	if err != nil {
		t.Fatal(err)
	}
	b, err := HashWith("same password here", fast())
	if err != nil {
		t.Fatal(err)
	}
	if a == b {
		t.Fatal("two hashes of one password are equal: the salt is not random")
	}
	for _, h := range []string{a, b} {
		if ok, err := Verify("same password here", h); err != nil || !ok {
			t.Fatalf("Verify(%q) = %v, %v", h, ok, err)
		}
	}
}

func TestVerifyMalformed(t *testing.T) {
	good, err := HashWith("a fine password", fast())
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(good, "$") // "", argon2id, v=19, params, salt, key
	join := func(p ...string) string { return strings.Join(p, "$") }
	cases := map[string]string{
		"empty":            "",
		"plain text":       "a fine password",
		"bcrypt":           "$2a$10$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy",
		"argon2i":          join("", "argon2i", parts[2], parts[3], parts[4], parts[5]),
		"old version":      join("", "argon2id", "v=16", parts[3], parts[4], parts[5]),
		"missing key":      join("", "argon2id", parts[2], parts[3], parts[4]),
		"extra field":      good + "$AAAA",
		"params reordered": join("", "argon2id", parts[2], "t=1,m=64,p=1", parts[4], parts[5]),
		"params missing":   join("", "argon2id", parts[2], "m=64,t=1", parts[4], parts[5]),
		"zero time":        join("", "argon2id", parts[2], "m=64,t=0,p=1", parts[4], parts[5]),
		"negative memory":  join("", "argon2id", parts[2], "m=-64,t=1,p=1", parts[4], parts[5]),
		"huge memory":      join("", "argon2id", parts[2], "m=4194304,t=1,p=1", parts[4], parts[5]),
		"huge time":        join("", "argon2id", parts[2], "m=64,t=100000,p=1", parts[4], parts[5]),
		"huge parallelism": join("", "argon2id", parts[2], "m=65536,t=1,p=256", parts[4], parts[5]),
		"memory too small": join("", "argon2id", parts[2], "m=8,t=1,p=4", parts[4], parts[5]),
		"leading zero":     join("", "argon2id", parts[2], "m=064,t=1,p=1", parts[4], parts[5]),
		"salt not base64":  join("", "argon2id", parts[2], parts[3], "!!!!", parts[5]),
		"salt too short":   join("", "argon2id", parts[2], parts[3], "AAAA", parts[5]),
		"key padded":       join("", "argon2id", parts[2], parts[3], parts[4], parts[5]+"="),
		"key too short":    join("", "argon2id", parts[2], parts[3], parts[4], "AAAAAAAA"),
		"no leading $":     strings.TrimPrefix(good, "$"),
	}
	for name, phc := range cases {
		t.Run(name, func(t *testing.T) {
			ok, err := Verify("a fine password", phc)
			if !errors.Is(err, ErrMalformed) || ok {
				t.Fatalf("Verify(%q) = %v, %v; want false, ErrMalformed", phc, ok, err)
			}
		})
	}
}

func TestHashWithRejectsWeakParams(t *testing.T) {
	for _, p := range []Params{
		{Memory: 64, Time: 0, Threads: 1, SaltLen: 16, KeyLen: 32},
		{Memory: 64, Time: 1, Threads: 0, SaltLen: 16, KeyLen: 32},
		{Memory: 64, Time: 1, Threads: 1, SaltLen: 4, KeyLen: 32},
		{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 8},
	} {
		if _, err := HashWith("a fine password", p); err == nil {
			t.Errorf("HashWith(%+v) succeeded", p)
		}
	}
}

func TestValidate(t *testing.T) {
	cases := []struct {
		pw string
		ok bool
	}{
		{"", false},
		{"short", false},
		{"elevenchars", false},
		{"twelve chars", true},
		{"ünïcödé-pässwörd", true},
		{"ééééééééééé", false}, // 11 characters, 22 bytes: characters count
		{"            ", false},
		{"\xff\xfe invalid utf8 bytes", false},
		{strings.Repeat("a", MaxLength), true},
		{strings.Repeat("a", MaxLength+1), false},
	}
	for _, c := range cases {
		err := Validate(c.pw)
		if (err == nil) != c.ok {
			t.Errorf("Validate(%q) = %v, want ok=%v", c.pw, err, c.ok)
		}
		if err != nil && !errors.Is(err, ErrPolicy) {
			t.Errorf("Validate(%q) = %v, not ErrPolicy", c.pw, err)
		}
	}
}

func FuzzVerify(f *testing.F) {
	good, err := HashWith("seed password", fast())
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add("$argon2id$v=19$m=64,t=1,p=1$AAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAA")
	f.Add("$argon2id$v=19$m=4294967295,t=1,p=1$AAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAA")
	f.Fuzz(func(t *testing.T, phc string) {
		p, err := ParamsOf(phc)
		if err != nil {
			return
		}
		if p.Memory > maxMemory || p.Time > maxTime || p.KeyLen > maxKeyLen {
			t.Fatalf("ParamsOf(%q) accepted out-of-range %+v", phc, p)
		}
		if p.Memory > 1<<14 || p.Time > 4 {
			return // valid but too slow to hash on every fuzz input
		}
		if _, err := Verify("x", phc); err != nil {
			t.Fatalf("Verify after ParamsOf succeeded: %v", err)
		}
	})
}
