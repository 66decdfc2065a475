package api

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/vigilfleet/vigil/server/internal/store"
)

// Refusal says why an operation shared by the REST API and the web UI
// (create a user, mint a join token, ...) did not happen. Status is the
// HTTP status, Field the offending input when there is one, and Err the
// cause of a 500 for the log. Each front end presents it its own way, so
// both apply the same validation, rules and audit entry.
type Refusal struct {
	Status  int
	Code    string
	Field   string
	Message string
	Err     error
}

func (r *Refusal) Error() string {
	if r.Err != nil {
		return r.Message + ": " + r.Err.Error()
	}
	return r.Message
}

// Unwrap exposes the server-side cause.
func (r *Refusal) Unwrap() error { return r.Err }

// invalid is a 400 naming the field.
func invalid(field, format string, args ...any) *Refusal {
	return &Refusal{Status: http.StatusBadRequest, Code: "invalid_argument", Field: field, Message: fmt.Sprintf(format, args...)}
}

// conflictRefusal is a 409.
func conflictRefusal(field, msg string) *Refusal {
	return &Refusal{Status: http.StatusConflict, Code: "conflict", Field: field, Message: msg}
}

// failed turns a store or server error into a Refusal the way internal
// answers it: a wrapped store.ErrNotFound or ErrConflict is 404 or 409,
// anything else a 500 whose cause is logged by the front end.
func failed(err error) *Refusal {
	switch {
	case errors.Is(err, store.ErrNotFound):
		return &Refusal{Status: http.StatusNotFound, Code: "not_found", Message: err.Error()}
	case errors.Is(err, store.ErrConflict):
		return &Refusal{Status: http.StatusConflict, Code: "conflict", Message: err.Error()}
	}
	return &Refusal{Status: http.StatusInternalServerError, Code: "internal", Message: "internal error", Err: err}
}

// refuse answers a Refusal as JSON; a 500 goes through internal, which
// logs its cause once.
func (s *Server) refuse(c *gin.Context, r *Refusal) {
	if r.Status >= http.StatusInternalServerError && r.Err != nil {
		s.internal(c, r.Err)
		return
	}
	fail(c, r.Status, r.Code, r.Field, r.Message)
}
