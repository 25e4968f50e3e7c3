package chaos

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// maxBody bounds API request bodies.
const maxBody = 1 << 20

// Handler returns Toxiproxy's HTTP API over this server (same paths, JSON shapes, defaults, status
// codes and error bodies), plus GET /events, the fault log as a JSON array. Like Toxiproxy it
// refuses requests whose User-Agent starts with "Mozilla/" (403), so that a web page cannot drive
// the API from a browser.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /reset", s.handleReset)
	mux.HandleFunc("GET /proxies", s.handleProxyIndex)
	mux.HandleFunc("POST /proxies", s.handleProxyCreate)
	mux.HandleFunc("POST /populate", s.handlePopulate)
	mux.HandleFunc("GET /proxies/{proxy}", s.handleProxyShow)
	mux.HandleFunc("POST /proxies/{proxy}", s.handleProxyUpdate)
	mux.HandleFunc("PATCH /proxies/{proxy}", s.handleProxyUpdate)
	mux.HandleFunc("DELETE /proxies/{proxy}", s.handleProxyDelete)
	mux.HandleFunc("GET /proxies/{proxy}/toxics", s.handleToxicIndex)
	mux.HandleFunc("POST /proxies/{proxy}/toxics", s.handleToxicCreate)
	mux.HandleFunc("GET /proxies/{proxy}/toxics/{toxic}", s.handleToxicShow)
	mux.HandleFunc("POST /proxies/{proxy}/toxics/{toxic}", s.handleToxicUpdate)
	mux.HandleFunc("PATCH /proxies/{proxy}/toxics/{toxic}", s.handleToxicUpdate)
	mux.HandleFunc("DELETE /proxies/{proxy}/toxics/{toxic}", s.handleToxicDelete)
	mux.HandleFunc("GET /version", s.handleVersion)
	mux.HandleFunc("GET /events", s.handleEvents)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.UserAgent(), "Mozilla/") {
			http.Error(w, "User agent not allowed", http.StatusForbidden)
			return
		}
		mux.ServeHTTP(w, r)
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	data, err := json.Marshal(v)
	if err != nil {
		writeError(w, fmt.Errorf("encode response: %w", err))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(data)
}

// writeError answers with Toxiproxy's error body; errors that are not *APIError are 500s.
func writeError(w http.ResponseWriter, err error) {
	var apiErr *APIError
	if !errors.As(err, &apiErr) {
		apiErr = &APIError{Message: err.Error(), Status: http.StatusInternalServerError}
	}
	data, _ := json.Marshal(apiErr)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(apiErr.Status)
	_, _ = w.Write(append(data, '\n'))
}

func readBody(r *http.Request) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err != nil {
		return nil, badRequest(err)
	}
	if len(data) > maxBody {
		return nil, badRequest(fmt.Errorf("body larger than %d bytes", maxBody))
	}
	return data, nil
}

func (s *Server) handleReset(w http.ResponseWriter, r *http.Request) {
	if err := s.Reset(); err != nil {
		writeError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) handleProxyIndex(w http.ResponseWriter, r *http.Request) {
	out := make(map[string]*Proxy)
	for _, p := range s.Proxies() {
		out[p.name] = p
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) handleProxyCreate(w http.ResponseWriter, r *http.Request) {
	body, err := readBody(r)
	if err != nil {
		writeError(w, err)
		return
	}
	var cfg ProxyConfig
	if err := decodeJSON(body, &cfg); err != nil {
		writeError(w, badRequest(err))
		return
	}
	p, err := s.CreateProxy(cfg)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, p)
}

func (s *Server) handlePopulate(w http.ResponseWriter, r *http.Request) {
	body, err := readBody(r)
	if err != nil {
		writeError(w, err)
		return
	}
	var cfgs []ProxyConfig
	if err := decodeJSON(body, &cfgs); err != nil {
		writeError(w, badRequest(err))
		return
	}
	proxies, err := s.Populate(cfgs)
	// Toxiproxy answers {"proxies": [...]} and, on error, adds the error fields and its status.
	resp := struct {
		*APIError
		Proxies []*Proxy `json:"proxies"`
	}{Proxies: proxies}
	status := http.StatusCreated
	if err != nil {
		if !errors.As(err, &resp.APIError) {
			resp.APIError = &APIError{Message: err.Error(), Status: http.StatusInternalServerError}
		}
		status = resp.APIError.Status
	}
	if resp.Proxies == nil {
		resp.Proxies = []*Proxy{}
	}
	writeJSON(w, status, resp)
}

func (s *Server) handleProxyShow(w http.ResponseWriter, r *http.Request) {
	p := s.proxyOf(w, r)
	if p == nil {
		return
	}
	writeJSON(w, http.StatusOK, p)
}

func (s *Server) handleProxyUpdate(w http.ResponseWriter, r *http.Request) {
	p := s.proxyOf(w, r)
	if p == nil {
		return
	}
	body, err := readBody(r)
	if err != nil {
		writeError(w, err)
		return
	}
	// Fields absent from the body keep their values.
	in := struct {
		Listen   string `json:"listen"`
		Upstream string `json:"upstream"`
		Enabled  bool   `json:"enabled"`
	}{p.Listen(), p.Upstream(), p.Enabled()}
	if err := decodeJSON(body, &in); err != nil {
		writeError(w, badRequest(err))
		return
	}
	if err := p.Update(in.Listen, in.Upstream, in.Enabled); err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, p)
}

func (s *Server) handleProxyDelete(w http.ResponseWriter, r *http.Request) {
	if err := s.DeleteProxy(r.PathValue("proxy")); err != nil {
		writeError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) handleToxicIndex(w http.ResponseWriter, r *http.Request) {
	p := s.proxyOf(w, r)
	if p == nil {
		return
	}
	writeJSON(w, http.StatusOK, p.Toxics())
}

// handleToxicCreate answers 200 with the toxic, as Toxiproxy does (not 201).
func (s *Server) handleToxicCreate(w http.ResponseWriter, r *http.Request) {
	p := s.proxyOf(w, r)
	if p == nil {
		return
	}
	body, err := readBody(r)
	if err != nil {
		writeError(w, err)
		return
	}
	t, err := DecodeToxic(body)
	if err != nil {
		writeError(w, err)
		return
	}
	t, err = p.AddToxic(t)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, t)
}

func (s *Server) handleToxicShow(w http.ResponseWriter, r *http.Request) {
	p := s.proxyOf(w, r)
	if p == nil {
		return
	}
	t, err := p.Toxic(r.PathValue("toxic"))
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, t)
}

func (s *Server) handleToxicUpdate(w http.ResponseWriter, r *http.Request) {
	p := s.proxyOf(w, r)
	if p == nil {
		return
	}
	body, err := readBody(r)
	if err != nil {
		writeError(w, err)
		return
	}
	t, err := p.updateToxicJSON(r.PathValue("toxic"), body)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, t)
}

func (s *Server) handleToxicDelete(w http.ResponseWriter, r *http.Request) {
	p := s.proxyOf(w, r)
	if p == nil {
		return
	}
	if err := p.RemoveToxic(r.PathValue("toxic")); err != nil {
		writeError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) handleVersion(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json;charset=utf-8")
	_, _ = fmt.Fprintf(w, "{\"version\": %q}\n", Version)
}

func (s *Server) handleEvents(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, s.Events())
}

// proxyOf returns the proxy named by the request's {proxy}, or writes the error (404) and returns
// nil.
func (s *Server) proxyOf(w http.ResponseWriter, r *http.Request) *Proxy {
	p, err := s.Proxy(r.PathValue("proxy"))
	if err != nil {
		writeError(w, err)
		return nil
	}
	return p
}
