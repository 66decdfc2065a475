package api

import (
	"errors"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/vigilfleet/vigil/server/internal/store"
)

// defaultChangesWindow is how far back GET /hosts/:id/inventory lists
// inventory changes unless the caller says `since`.
const defaultChangesWindow = 30 * 24 * time.Hour

// inventoryJSON is a host's latest inventory and its recent changes.
// CollectedAt is null (and the lists empty) until an agent reported one.
type inventoryJSON struct {
	HostID      int64             `json:"host_id"`
	Host        string            `json:"host"`
	CollectedAt *time.Time        `json:"collected_at"`
	OS          string            `json:"os"`
	Kernel      string            `json:"kernel"`
	Packages    []store.Package   `json:"packages"`
	Services    []store.Service   `json:"services"`
	Users       []store.Account   `json:"users"`
	Groups      []store.Account   `json:"groups"`
	Ports       []store.Port      `json:"ports"`
	Interfaces  []store.Interface `json:"interfaces"`
	Since       time.Time         `json:"changes_since"`
	Changes     []factChangeJSON  `json:"changes"`
}

type factChangeJSON struct {
	At     time.Time `json:"at"`
	Kind   string    `json:"kind"`
	Change string    `json:"change"`
	Item   string    `json:"item"`
	Old    string    `json:"old"`
	New    string    `json:"new"`
}

// orEmpty keeps JSON lists as [] rather than null.
func orEmpty[T any](v []T) []T {
	if v == nil {
		return []T{}
	}
	return v
}

// hostInventory answers GET /hosts/:id/inventory.
func (s *Server) hostInventory(c *gin.Context) {
	id, ok := pathID(c, "id")
	if !ok {
		return
	}
	now := s.now().UTC()
	since := now.Add(-defaultChangesWindow)
	if v := c.Query("since"); v != "" {
		t, err := parseMoment(v, false)
		if err != nil {
			badRequest(c, "since", "since: %v", err)
			return
		}
		since = t
	}
	ctx := c.Request.Context()
	h, err := s.d.Store.Host(ctx, id)
	if err != nil {
		s.internal(c, err)
		return
	}
	out := inventoryJSON{HostID: h.ID, Host: h.Name, Since: since}
	f, err := s.d.Store.Facts(ctx, id)
	switch {
	case err == nil:
		out.CollectedAt = ts(f.CollectedAt)
		out.OS, out.Kernel = f.OS, f.Kernel
	case !errors.Is(err, store.ErrNotFound):
		s.internal(c, err)
		return
	}
	out.Packages, out.Services, out.Users = orEmpty(f.Packages), orEmpty(f.Services), orEmpty(f.Users)
	out.Groups, out.Ports, out.Interfaces = orEmpty(f.Groups), orEmpty(f.Ports), orEmpty(f.Interfaces)
	changes, err := s.d.Store.FactChanges(ctx, id, since, now.Add(time.Second))
	if err != nil {
		s.internal(c, err)
		return
	}
	out.Changes = make([]factChangeJSON, len(changes))
	for i, ch := range changes {
		out.Changes[i] = factChangeJSON{At: ch.At, Kind: ch.Kind, Change: ch.Change, Item: ch.Item, Old: ch.Old, New: ch.New}
	}
	c.JSON(http.StatusOK, out)
}

// factMatchJSON is one inventory item a fleet search found; the fields of
// other kinds are absent.
type factMatchJSON struct {
	HostID   int64   `json:"host_id"`
	Host     string  `json:"host"`
	Kind     string  `json:"kind"`
	Name     string  `json:"name,omitempty"`
	Version  *string `json:"version,omitempty"`
	Arch     *string `json:"arch,omitempty"`
	Protocol *string `json:"protocol,omitempty"`
	Address  *string `json:"address,omitempty"`
	Port     *int    `json:"port,omitempty"`
	Process  *string `json:"process,omitempty"`
	Enabled  *bool   `json:"enabled,omitempty"`
	Active   *bool   `json:"active,omitempty"`
}

func toFactMatchJSON(m store.FactMatch) factMatchJSON {
	out := factMatchJSON{HostID: m.HostID, Host: m.HostName, Kind: m.Kind}
	switch m.Kind {
	case store.FactPackage:
		out.Name, out.Version, out.Arch = m.Name, &m.Version, &m.Arch
	case store.FactPort:
		out.Protocol, out.Address, out.Port, out.Process = &m.Protocol, &m.Address, &m.Port, &m.Name
	default:
		out.Name, out.Enabled, out.Active = m.Name, &m.Enabled, &m.Active
	}
	return out
}

// searchInventory answers GET /inventory/search: hosts with a package, a
// listening port or a service (all given criteria must hold).
func (s *Server) searchInventory(c *gin.Context) {
	q := store.FactQuery{Package: c.Query("package"), Service: c.Query("service")}
	var ok bool
	if q.Port, ok = queryInt(c, "port", 0, 1, 65535); !ok {
		return
	}
	if q.Limit, ok = queryInt(c, "limit", maxPage, 1, maxPage); !ok {
		return
	}
	if len(q.Package) > 256 || len(q.Service) > 256 {
		badRequest(c, "package", "package and service names are at most 256 characters")
		return
	}
	if q.Empty() {
		badRequest(c, "package", "give at least one of package, port or service")
		return
	}
	ms, err := s.d.Store.SearchFacts(c.Request.Context(), q)
	if err != nil {
		s.internal(c, err)
		return
	}
	out := make([]factMatchJSON, len(ms))
	for i, m := range ms {
		out[i] = toFactMatchJSON(m)
	}
	c.JSON(http.StatusOK, gin.H{"matches": out})
}
