package qianfantest

import (
	"encoding/json"
	"io"
	"net/http"
	"strconv"
)

// controlMux routes the /_fake/ endpoints, for processes that cannot call
// the Server's methods. None of them counts in Stats. Changes take POST or
// PUT; the mux answers 405 to other methods and 404 to unknown paths.
func (s *Server) controlMux() *http.ServeMux {
	mux := http.NewServeMux()
	change := func(path string, h http.HandlerFunc) {
		mux.HandleFunc("POST "+path, h)
		mux.HandleFunc("PUT "+path, h)
	}
	mux.HandleFunc("GET /_fake/stats", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, s.Stats())
	})
	change("/_fake/faults", func(w http.ResponseWriter, r *http.Request) {
		var f Faults
		if decodeBody(w, r, &f, false) {
			s.SetFaults(f)
			w.WriteHeader(http.StatusNoContent)
		}
	})
	mux.HandleFunc("GET /_fake/inventory", func(w http.ResponseWriter, _ *http.Request) {
		inv := s.Inventory()
		if inv == nil {
			http.Error(w, errNoInventory.Error(), http.StatusConflict)
			return
		}
		writeJSON(w, http.StatusOK, inv)
	})
	change("/_fake/inventory", func(w http.ResponseWriter, r *http.Request) {
		inv, err := ReadInventory(io.LimitReader(r.Body, 64<<20))
		if err == nil {
			err = s.LoadInventory(inv)
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("GET /_fake/assumptions", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, s.Assumptions())
	})
	change("/_fake/assumptions", func(w http.ResponseWriter, r *http.Request) {
		var a Assumptions
		if decodeBody(w, r, &a, true) {
			s.SetAssumptions(a)
			w.WriteHeader(http.StatusNoContent)
		}
	})
	change("/_fake/v1-off", func(w http.ResponseWriter, r *http.Request) {
		if after := r.URL.Query().Get("after"); after != "" {
			n, err := strconv.Atoi(after)
			if err != nil || n < 0 {
				http.Error(w, "after: want a number of calls", http.StatusBadRequest)
				return
			}
			s.SetV1OffAfter(n)
		} else {
			s.SetV1Off(true)
		}
		w.WriteHeader(http.StatusNoContent)
	})
	for path, set := range map[string]func(){
		"/_fake/v1-on":  func() { s.SetV1Off(false) },
		"/_fake/v2-off": func() { s.SetV2Off(true) },
		"/_fake/v2-on":  func() { s.SetV2Off(false) },
	} {
		change(path, func(w http.ResponseWriter, _ *http.Request) {
			set()
			w.WriteHeader(http.StatusNoContent)
		})
	}
	s.keyRoutes(change)
	s.itemRoutes(change)
	return mux
}

// keyRoutes adds the endpoints that revoke, restore and limit access keys.
func (s *Server) keyRoutes(change func(path string, h http.HandlerFunc)) {
	for path, set := range map[string]func(ak string, r *http.Request) bool{
		"/_fake/keys/revoke":  func(ak string, _ *http.Request) bool { s.Revoke(ak); return true },
		"/_fake/keys/restore": func(ak string, _ *http.Request) bool { s.Restore(ak); return true },
		"/_fake/keys/permission": func(ak string, r *http.Request) bool {
			p := Permission(r.URL.Query().Get("level"))
			if p != PermFull && p != PermRead && p != PermNone {
				return false
			}
			s.SetPermission(ak, p)
			return true
		},
	} {
		change(path, func(w http.ResponseWriter, r *http.Request) {
			ak := r.URL.Query().Get("access_key")
			if ak == "" {
				http.Error(w, "access_key is required", http.StatusBadRequest)
				return
			}
			if !set(ak, r) {
				http.Error(w, "level must be full, read or none", http.StatusBadRequest)
				return
			}
			w.WriteHeader(http.StatusNoContent)
		})
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

// itemRoutes adds the endpoints that add services and batch tasks and move
// a task to another state.
func (s *Server) itemRoutes(change func(path string, h http.HandlerFunc)) {
	change("/_fake/services", func(w http.ResponseWriter, r *http.Request) {
		var svc Service
		if decodeBody(w, r, &svc, true) {
			answerErr(w, s.AddService(svc))
		}
	})
	change("/_fake/batch-tasks", func(w http.ResponseWriter, r *http.Request) {
		var t BatchTask
		if decodeBody(w, r, &t, true) {
			answerErr(w, s.AddBatchTask(t))
		}
	})
	change("/_fake/batch-tasks/status", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		answerErr(w, s.SetBatchTaskStatus(q.Get("id"), q.Get("status")))
	})
}

// answerErr answers 204, or 400 with err.
func answerErr(w http.ResponseWriter, err error) {
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
