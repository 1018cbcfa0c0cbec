package fakeqianfan

import (
	"encoding/json"
	"io"
	"net/http"
	"strconv"
)

// serveControl serves the /_fake/ endpoints, for processes that cannot
// call the Server's methods. None of them counts in Stats.
func (s *Server) serveControl(w http.ResponseWriter, r *http.Request) {
	post := func() bool {
		if r.Method != http.MethodPost && r.Method != http.MethodPut {
			http.Error(w, "use POST", http.StatusMethodNotAllowed)
			return false
		}
		return true
	}
	ak := r.URL.Query().Get("access_key")
	switch r.URL.Path {
	case "/_fake/stats":
		writeJSON(w, http.StatusOK, s.Stats())
	case "/_fake/faults":
		var f Faults
		if post() && decodeBody(w, r, &f, false) {
			s.SetFaults(f)
			w.WriteHeader(http.StatusNoContent)
		}
	case "/_fake/inventory":
		if r.Method == http.MethodGet {
			inv := s.Inventory()
			if inv == nil {
				http.Error(w, errNoInventory.Error(), http.StatusConflict)
				return
			}
			writeJSON(w, http.StatusOK, inv)
			return
		}
		if !post() {
			return
		}
		inv, err := ReadInventory(io.LimitReader(r.Body, 64<<20))
		if err == nil {
			err = s.LoadInventory(inv)
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	case "/_fake/assumptions":
		if r.Method == http.MethodGet {
			writeJSON(w, http.StatusOK, s.Assumptions())
			return
		}
		var a Assumptions
		if post() && decodeBody(w, r, &a, true) {
			s.SetAssumptions(a)
			w.WriteHeader(http.StatusNoContent)
		}
	case "/_fake/v1-off", "/_fake/v1-on", "/_fake/v2-off", "/_fake/v2-on":
		if !post() {
			return
		}
		off := r.URL.Path[len(r.URL.Path)-3:] == "off"
		if after := r.URL.Query().Get("after"); after != "" && off && r.URL.Path[7:9] == "v1" {
			n, err := strconv.Atoi(after)
			if err != nil || n < 0 {
				http.Error(w, "after: want a number of calls", http.StatusBadRequest)
				return
			}
			s.SetV1OffAfter(n)
		} else if r.URL.Path[7:9] == "v1" {
			s.SetV1Off(off)
		} else {
			s.SetV2Off(off)
		}
		w.WriteHeader(http.StatusNoContent)
	case "/_fake/keys/revoke", "/_fake/keys/restore", "/_fake/keys/permission":
		if !post() {
			return
		}
		if ak == "" {
			http.Error(w, "access_key is required", http.StatusBadRequest)
			return
		}
		switch r.URL.Path {
		case "/_fake/keys/revoke":
			s.Revoke(ak)
		case "/_fake/keys/restore":
			s.Restore(ak)
		default:
			p := Permission(r.URL.Query().Get("level"))
			if p != PermFull && p != PermRead && p != PermNone {
				http.Error(w, "level must be full, read or none", http.StatusBadRequest)
				return
			}
			s.SetPermission(ak, p)
		}
		w.WriteHeader(http.StatusNoContent)
	default:
		http.Error(w, "unknown control endpoint", http.StatusNotFound)
	}
}

// decodeBody decodes JSON; strict rejects unknown fields (a misspelt
// assumption must not pass silently).
func decodeBody(w http.ResponseWriter, r *http.Request, v any, strict bool) bool {
	dec := json.NewDecoder(io.LimitReader(r.Body, 1<<16))
	if strict {
		dec.DisallowUnknownFields()
	}
	if err := dec.Decode(v); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return false
	}
	return true
}
