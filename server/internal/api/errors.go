package api

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/gin-gonic/gin"
)

const (
	ctxRequestID = "vigil.request_id"
	ctxPrincipal = "vigil.principal"
)

// ErrorBody is the JSON shape of every error response.
type ErrorBody struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
		Field   string `json:"field,omitempty"`
	} `json:"error"`
	RequestID string `json:"request_id"`
}

// fail writes an error response and aborts the chain. field names the
// offending query parameter or body field, when there is one.
func fail(c *gin.Context, status int, code, field, msg string) {
	var b ErrorBody
	b.Error.Code, b.Error.Message, b.Error.Field = code, msg, field
	b.RequestID = RequestID(c)
	c.AbortWithStatusJSON(status, b)
}

// badRequest answers 400 naming the field.
func badRequest(c *gin.Context, field, format string, args ...any) {
	fail(c, http.StatusBadRequest, "invalid_argument", field, fmt.Sprintf(format, args...))
}

// RequestID returns the request's id.
func RequestID(c *gin.Context) string { return c.GetString(ctxRequestID) }

func newRequestID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func saneRequestID(id string) bool {
	if id == "" || len(id) > 64 {
		return false
	}
	for _, r := range id {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
			return false
		}
	}
	return true
}

// bind decodes a JSON body into v, rejecting unknown fields and trailing
// data. On failure it has answered (400 naming the field, or 413) and
// returns false.
func bind(c *gin.Context, v any) bool {
	dec := json.NewDecoder(c.Request.Body)
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil && dec.More() {
		err = errors.New("trailing data after the JSON object")
	}
	if err == nil {
		return true
	}
	var tooBig *http.MaxBytesError
	var typeErr *json.UnmarshalTypeError
	var syntaxErr *json.SyntaxError
	switch {
	case errors.As(err, &tooBig):
		fail(c, http.StatusRequestEntityTooLarge, "too_large", "", fmt.Sprintf("request body larger than %d bytes", tooBig.Limit))
	case errors.As(err, &typeErr):
		badRequest(c, typeErr.Field, "field %q must be %s", typeErr.Field, typeErr.Type)
	case errors.As(err, &syntaxErr):
		badRequest(c, "", "malformed JSON at byte %d: %v", syntaxErr.Offset, err)
	case errors.Is(err, io.EOF):
		badRequest(c, "", "request body is empty; a JSON object is required")
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		f := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		badRequest(c, f, "unknown field %q", f)
	default:
		badRequest(c, "", "invalid JSON body: %v", err)
	}
	return false
}

// pathID parses the :name path parameter as a positive id; on failure it
// has answered 400 and returns false.
func pathID(c *gin.Context, name string) (int64, bool) {
	v, err := strconv.ParseInt(c.Param(name), 10, 64)
	if err != nil || v <= 0 {
		badRequest(c, name, "%s must be a positive integer, got %q", name, c.Param(name))
		return 0, false
	}
	return v, true
}
