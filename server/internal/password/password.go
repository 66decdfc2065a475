// Package password hashes and checks local account passwords with argon2id,
// a memory-hard function, so that a stolen users table costs an attacker
// tens of megabytes and milliseconds per guess. Hashes are PHC strings,
//
//	$argon2id$v=19$m=65536,t=3,p=2$<salt>$<key>
//
// (salt and key in unpadded standard base64), so the parameters travel with
// each hash and can be raised later without breaking existing accounts.
package password

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"golang.org/x/crypto/argon2"
)

// Params are argon2id cost parameters. They are recorded in every hash, so
// Verify uses the parameters a hash was made with, not the current ones.
type Params struct {
	Memory  uint32 // KiB
	Time    uint32 // passes over memory
	Threads uint8
	SaltLen int // bytes
	KeyLen  int // bytes
}

// DefaultParams is what Hash uses: 64 MiB, 3 passes, 2 lanes (RFC 9106's
// second recommended option, sized for a server that logs people in, not
// for bulk hashing), a 16-byte salt and a 32-byte key.
func DefaultParams() Params {
	return Params{Memory: 64 * 1024, Time: 3, Threads: 2, SaltLen: 16, KeyLen: 32}
}

// MinLength is the shortest password Validate accepts, in characters.
const MinLength = 12

// MaxLength bounds a password in bytes, so a request cannot make the server
// hash megabytes; no human types more.
const MaxLength = 1024

// Bounds accepted when parsing a stored hash. They keep a corrupted or
// hostile users row from making Verify allocate gigabytes or spin forever.
const (
	maxMemory  = 1 << 20 // KiB: 1 GiB
	maxTime    = 64
	minSaltLen = 8
	minKeyLen  = 16
	maxKeyLen  = 1024
)

// ErrMalformed is returned (wrapped) by Verify for a string that is not an
// argon2id PHC hash this package can check.
var ErrMalformed = errors.New("malformed argon2id hash")

// ErrPolicy is returned (wrapped) by Validate for a password that does not
// meet the minimum policy.
var ErrPolicy = errors.New("password does not meet the policy")

// Hash returns the PHC string of pw under DefaultParams.
func Hash(pw string) (string, error) { return HashWith(pw, DefaultParams()) }

// HashWith returns the PHC string of pw under p. Lower parameters than
// DefaultParams are for tests only: they make hashing fast and weak.
func HashWith(pw string, p Params) (string, error) {
	if p.Memory < 8*uint32(p.Threads) || p.Time < 1 || p.Threads < 1 || p.SaltLen < minSaltLen || p.KeyLen < minKeyLen {
		return "", fmt.Errorf("argon2id parameters m=%d t=%d p=%d salt=%d key=%d out of range", p.Memory, p.Time, p.Threads, p.SaltLen, p.KeyLen)
	}
	salt := make([]byte, p.SaltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("password salt: %w", err)
	}
	key := argon2.IDKey([]byte(pw), salt, p.Time, p.Memory, p.Threads, uint32(p.KeyLen))
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, p.Memory, p.Time, p.Threads,
		base64.RawStdEncoding.EncodeToString(salt), base64.RawStdEncoding.EncodeToString(key)), nil
}

// Verify reports whether pw matches the PHC hash phc, comparing keys in
// constant time. A hash it cannot parse is an error wrapping ErrMalformed,
// never a silent false, so a corrupted row is noticed.
func Verify(pw, phc string) (bool, error) {
	p, salt, key, err := parse(phc)
	if err != nil {
		return false, err
	}
	got := argon2.IDKey([]byte(pw), salt, p.Time, p.Memory, p.Threads, uint32(len(key)))
	return subtle.ConstantTimeCompare(got, key) == 1, nil
}

// ParamsOf returns the parameters a hash was made with (for example to
// decide whether to rehash it under newer DefaultParams).
func ParamsOf(phc string) (Params, error) {
	p, _, _, err := parse(phc)
	return p, err
}

// parse splits and checks a PHC string: $argon2id$v=19$m=..,t=..,p=..$salt$key.
func parse(phc string) (Params, []byte, []byte, error) {
	bad := func(why string) (Params, []byte, []byte, error) {
		return Params{}, nil, nil, fmt.Errorf("%w: %s", ErrMalformed, why)
	}
	parts := strings.Split(phc, "$")
	if len(parts) != 6 || parts[0] != "" {
		return bad("want 5 $-separated fields")
	}
	if parts[1] != "argon2id" {
		return bad(fmt.Sprintf("algorithm %q is not argon2id", parts[1]))
	}
	if parts[2] != "v="+strconv.Itoa(argon2.Version) {
		return bad(fmt.Sprintf("version %q is not v=%d", parts[2], argon2.Version))
	}
	var p Params
	fields := strings.Split(parts[3], ",")
	if len(fields) != 3 {
		return bad("parameters must be m=..,t=..,p=..")
	}
	for i, name := range []string{"m", "t", "p"} {
		v, ok := strings.CutPrefix(fields[i], name+"=")
		if !ok {
			return bad(fmt.Sprintf("parameter %d must be %s=", i+1, name))
		}
		n, err := strconv.ParseUint(v, 10, 32)
		if err != nil || n == 0 || (v[0] == '0') {
			return bad(fmt.Sprintf("parameter %s=%q is not a positive integer", name, v))
		}
		switch name {
		case "m":
			p.Memory = uint32(n)
		case "t":
			p.Time = uint32(n)
		case "p":
			if n > 255 {
				return bad(fmt.Sprintf("parallelism %d above 255", n))
			}
			p.Threads = uint8(n)
		}
	}
	if p.Memory > maxMemory || p.Memory < 8*uint32(p.Threads) {
		return bad(fmt.Sprintf("memory %d KiB out of range", p.Memory))
	}
	if p.Time > maxTime {
		return bad(fmt.Sprintf("time %d above %d", p.Time, maxTime))
	}
	salt, err := base64.RawStdEncoding.Strict().DecodeString(parts[4])
	if err != nil || len(salt) < minSaltLen {
		return bad("salt is not base64 of at least 8 bytes")
	}
	key, err := base64.RawStdEncoding.Strict().DecodeString(parts[5])
	if err != nil || len(key) < minKeyLen || len(key) > maxKeyLen {
		return bad("key is not base64 of 16 to 1024 bytes")
	}
	p.SaltLen, p.KeyLen = len(salt), len(key)
	return p, salt, key, nil
}

// Validate checks the minimum password policy: at least MinLength
// characters and at most MaxLength bytes of valid UTF-8. Length is what
// resists guessing; composition rules mostly produce "Password1!".
func Validate(pw string) error {
	switch {
	case !utf8.ValidString(pw):
		return fmt.Errorf("%w: not valid UTF-8", ErrPolicy)
	case utf8.RuneCountInString(pw) < MinLength:
		return fmt.Errorf("%w: at least %d characters are required", ErrPolicy, MinLength)
	case len(pw) > MaxLength:
		return fmt.Errorf("%w: at most %d bytes are allowed", ErrPolicy, MaxLength)
	case strings.TrimSpace(pw) == "":
		return fmt.Errorf("%w: only whitespace", ErrPolicy)
	}
	return nil
}
