package registry

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/kafkasaga/kafkasaga/devstack/registry/compat"
)

const contentType = "application/vnd.schemaregistry.v1+json"

// maxBody bounds request bodies; real schemas are far smaller.
const maxBody = 8 << 20

func (r *Registry) routes() *http.ServeMux {
	mux := http.NewServeMux()
	handle := func(pattern string, h func(*http.Request) (any, error)) {
		mux.HandleFunc(pattern, r.serveJSON(h))
	}
	handle("GET /schemas/types", func(*http.Request) (any, error) { return []string{"AVRO"}, nil })
	handle("GET /schemas/ids/{id}", r.schemaByID)
	handle("GET /schemas/ids/{id}/schema", r.schemaTextByID)
	handle("GET /schemas/ids/{id}/versions", r.versionsByID)
	handle("GET /schemas/ids/{id}/subjects", r.subjectsByID)

	handle("GET /subjects", r.listSubjects)
	handle("POST /subjects/{subject}", r.lookup)
	handle("DELETE /subjects/{subject}", r.deleteSubject)
	handle("GET /subjects/{subject}/versions", r.listVersions)
	handle("POST /subjects/{subject}/versions", r.register)
	handle("GET /subjects/{subject}/versions/{version}", r.getVersion)
	handle("GET /subjects/{subject}/versions/{version}/schema", r.getVersionText)
	handle("GET /subjects/{subject}/versions/{version}/referencedby", r.referencedBy)
	handle("DELETE /subjects/{subject}/versions/{version}", r.deleteVersion)

	handle("POST /compatibility/subjects/{subject}/versions", r.checkCompatibility)
	handle("POST /compatibility/subjects/{subject}/versions/{version}", r.checkCompatibility)

	handle("GET /config", r.getConfig)
	handle("PUT /config", r.putConfig)
	handle("DELETE /config", r.deleteConfig)
	handle("GET /config/{subject}", r.getConfig)
	handle("PUT /config/{subject}", r.putConfig)
	handle("DELETE /config/{subject}", r.deleteConfig)

	// Only READWRITE: an import mode would need ids chosen by clients.
	handle("GET /mode", getMode)
	handle("GET /mode/{subject}", getMode)
	handle("PUT /mode", putMode)
	handle("PUT /mode/{subject}", putMode)

	handle("/", func(req *http.Request) (any, error) {
		// A route of the path under another method: 405, as Confluent's
		// registry answers, not 404.
		for _, m := range []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodDelete} {
			probe := req.Clone(req.Context())
			probe.Method = m
			if _, pattern := mux.Handler(probe); m != req.Method && pattern != "/" && pattern != "" {
				return nil, errMethodNotAllowed()
			}
		}
		return nil, errNotFound()
	})
	return mux
}

// serveJSON adapts h: its result becomes a 200 JSON body, its error a
// Confluent error body, and a panic a 500 rather than a dropped connection.
func (r *Registry) serveJSON(h func(*http.Request) (any, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, req *http.Request) {
		defer func() {
			if p := recover(); p != nil {
				r.writeError(w, req, fmt.Errorf("panic: %v", p))
			}
		}()
		body, err := h(req)
		if err != nil {
			r.writeError(w, req, err)
			return
		}
		writeJSON(w, http.StatusOK, body)
	}
}

func (r *Registry) writeError(w http.ResponseWriter, req *http.Request, err error) {
	var ae *apiError
	if !errors.As(err, &ae) {
		r.logger.Error("schema registry request failed", "method", req.Method, "path", req.URL.Path, "error", err)
		ae = &apiError{http.StatusInternalServerError, 50001, "Error in the backend data store: " + err.Error()}
	}
	writeJSON(w, ae.status, map[string]any{"error_code": ae.code, "message": ae.msg})
}

func writeJSON(w http.ResponseWriter, status int, body any) {
	w.Header().Set("Content-Type", contentType)
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(body) // the client hung up; nothing left to tell it
}

func decodeBody(req *http.Request, into any) error {
	if err := json.NewDecoder(http.MaxBytesReader(nil, req.Body, maxBody)).Decode(into); err != nil {
		return errBadRequest(err)
	}
	return nil
}

// decodeSchema reads a schema request body and parses its schema. A
// registration (register) that asks for its id or version is refused, as
// Confluent's registry refuses one outside IMPORT mode, which this one
// does not have: it gives both itself.
func decodeSchema(req *http.Request, register bool) (parsedSchema, error) {
	body := struct {
		Schema     string            `json:"schema"`
		SchemaType string            `json:"schemaType"`
		References []json.RawMessage `json:"references"`
		ID         int               `json:"id"`
		Version    int               `json:"version"`
	}{ID: -1}
	if err := decodeBody(req, &body); err != nil {
		return parsedSchema{}, err
	}
	if register && (body.ID >= 0 || body.Version > 0) {
		return parsedSchema{}, errNotImportMode(req.PathValue("subject"))
	}
	if t := strings.ToUpper(body.SchemaType); t != "" && t != "AVRO" {
		return parsedSchema{}, errInvalidSchema(fmt.Sprintf("Schema type %s is not supported: this development registry stores AVRO schemas only.", body.SchemaType))
	}
	if len(body.References) > 0 {
		return parsedSchema{}, errInvalidSchema("Schema references are not supported by this development registry.")
	}
	s, err := parseSchema(body.Schema)
	if err == nil {
		// Offered, not replayed from _schemas: what was taken stays.
		err = compat.CheckDefaults(body.Schema)
	}
	if err != nil {
		return parsedSchema{}, errInvalidSchema(fmt.Sprintf("Invalid schema: %v", err))
	}
	return s, nil
}

func parseVersion(s string) (versionRef, error) {
	if s == "latest" || s == "-1" {
		return versionRef{latest: true}, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > math.MaxInt32 {
		return versionRef{}, errInvalidVersion(s)
	}
	return versionRef{number: n}, nil
}

func flag(req *http.Request, name string) bool {
	v, _ := strconv.ParseBool(req.URL.Query().Get(name))
	return v
}

// subjectVersion is how Confluent shows a version of a subject.
type subjectVersion struct {
	Subject string `json:"subject"`
	Version int    `json:"version"`
	ID      int    `json:"id"`
	Schema  string `json:"schema"`
}

func (v *version) view() subjectVersion {
	return subjectVersion{Subject: v.subject, Version: v.version, ID: v.schema.id, Schema: v.schema.text}
}

func schemaByIDParam(st *state, req *http.Request) (*schema, error) {
	id, err := strconv.Atoi(req.PathValue("id"))
	s := st.byID[id]
	if err != nil || s == nil {
		return nil, errSchemaNotFound("Schema " + req.PathValue("id"))
	}
	return s, nil
}

func (r *Registry) schemaByID(req *http.Request) (any, error) {
	return r.read(func(st *state) (any, error) {
		s, err := schemaByIDParam(st, req)
		if err != nil {
			return nil, err
		}
		return map[string]string{"schema": s.text}, nil
	})
}

func (r *Registry) schemaTextByID(req *http.Request) (any, error) {
	return r.read(func(st *state) (any, error) {
		s, err := schemaByIDParam(st, req)
		if err != nil {
			return nil, err
		}
		return json.RawMessage(s.text), nil
	})
}

func (r *Registry) versionsByID(req *http.Request) (any, error) {
	return r.read(func(st *state) (any, error) {
		s, err := schemaByIDParam(st, req)
		if err != nil {
			return nil, err
		}
		type pair struct {
			Subject string `json:"subject"`
			Version int    `json:"version"`
		}
		out := []pair{}
		for _, v := range st.usages(s.id, flag(req, "deleted")) {
			out = append(out, pair{v.subject, v.version})
		}
		return out, nil
	})
}

func (r *Registry) subjectsByID(req *http.Request) (any, error) {
	return r.read(func(st *state) (any, error) {
		s, err := schemaByIDParam(st, req)
		if err != nil {
			return nil, err
		}
		out := []string{}
		for _, v := range st.usages(s.id, flag(req, "deleted")) {
			if !slices.Contains(out, v.subject) {
				out = append(out, v.subject)
			}
		}
		return out, nil
	})
}

func (r *Registry) listSubjects(req *http.Request) (any, error) {
	return r.read(func(st *state) (any, error) {
		prefix := req.URL.Query().Get("subjectPrefix")
		out := []string{}
		for subject := range st.subjects {
			deletedOnly := flag(req, "deletedOnly") && len(st.versions(subject, false)) > 0
			if strings.HasPrefix(subject, prefix) && !deletedOnly && len(versionsAsked(st, subject, req)) > 0 {
				out = append(out, subject)
			}
		}
		slices.Sort(out)
		return out, nil
	})
}

func (r *Registry) listVersions(req *http.Request) (any, error) {
	return r.read(func(st *state) (any, error) {
		subject := req.PathValue("subject")
		vs := versionsAsked(st, subject, req)
		if len(vs) == 0 {
			return nil, errSubjectNotFound(subject)
		}
		out := make([]int, len(vs))
		for i, v := range vs {
			out[i] = v.version
		}
		return out, nil
	})
}

// versionsAsked returns the versions of subject a listing asks for: the
// live ones, with the soft-deleted ones too (deleted), or only those
// (deletedOnly), as Confluent's lookup filters. A subject is listed as
// deleted only once every version of it is (Confluent's
// extractUniqueSubjects).
func versionsAsked(st *state, subject string, req *http.Request) []*version {
	if !flag(req, "deletedOnly") {
		return st.versions(subject, flag(req, "deleted"))
	}
	live := st.versions(subject, false)
	return slices.DeleteFunc(slices.Clone(st.versions(subject, true)), func(v *version) bool { return slices.Contains(live, v) })
}

// referencedBy answers the ids of the schemas that refer to a version:
// none, since the registry takes no references, once the version is
// found.
func (r *Registry) referencedBy(req *http.Request) (any, error) {
	return r.read(func(st *state) (any, error) {
		if _, err := findVersionParam(st, req); err != nil {
			return nil, err
		}
		return []int{}, nil
	})
}

// findVersionParam returns the version a read names. As Confluent's, it
// answers 40402 (version -1) for "latest" when deleted versions are asked
// for and only those are left.
func findVersionParam(st *state, req *http.Request) (*version, error) {
	ref, err := parseVersion(req.PathValue("version"))
	if err != nil {
		return nil, err
	}
	subject, deleted := req.PathValue("subject"), flag(req, "deleted")
	v, err := st.findVersion(subject, ref, deleted)
	if err != nil && ref.latest && deleted && len(st.versions(subject, true)) > 0 {
		return nil, errVersionNotFound(-1)
	}
	return v, err
}

func (r *Registry) getVersion(req *http.Request) (any, error) {
	return r.read(func(st *state) (any, error) {
		v, err := findVersionParam(st, req)
		if err != nil {
			return nil, err
		}
		return v.view(), nil
	})
}

func (r *Registry) getVersionText(req *http.Request) (any, error) {
	return r.read(func(st *state) (any, error) {
		v, err := findVersionParam(st, req)
		if err != nil {
			return nil, err
		}
		return json.RawMessage(v.schema.text), nil
	})
}

func (r *Registry) lookup(req *http.Request) (any, error) {
	s, err := decodeSchema(req, false)
	if err != nil {
		return nil, err
	}
	return r.read(func(st *state) (any, error) {
		subject := req.PathValue("subject")
		vs := st.versions(subject, flag(req, "deleted"))
		if len(vs) == 0 {
			return nil, errSubjectNotFound(subject)
		}
		for _, v := range vs {
			if v.schema.canonical == s.canonical {
				return v.view(), nil
			}
		}
		return nil, errSchemaNotFound("Schema")
	})
}

func (r *Registry) register(req *http.Request) (any, error) {
	s, err := decodeSchema(req, true)
	if err != nil {
		return nil, err
	}
	subject := req.PathValue("subject")
	var id int
	var created bool
	err = r.change(req.Context(), func(st *state) (recs []record, err error) {
		id, recs, err = st.register(subject, s)
		created = len(recs) > 0
		return recs, err
	})
	if err != nil {
		return nil, err
	}
	if created {
		r.logger.Info("schema registered", "subject", subject, "id", id)
	}
	return map[string]int{"id": id}, nil
}

func (r *Registry) deleteSubject(req *http.Request) (any, error) {
	var deleted []int
	err := r.change(req.Context(), func(st *state) (recs []record, err error) {
		deleted, recs, err = st.deleteSubject(req.PathValue("subject"), flag(req, "permanent"))
		return recs, err
	})
	return deleted, err
}

func (r *Registry) deleteVersion(req *http.Request) (any, error) {
	ref, err := parseVersion(req.PathValue("version"))
	if err != nil {
		return nil, err
	}
	var deleted int
	err = r.change(req.Context(), func(st *state) (recs []record, err error) {
		deleted, recs, err = st.deleteVersion(req.PathValue("subject"), ref, flag(req, "permanent"))
		return recs, err
	})
	return deleted, err
}

// checkCompatibility checks a schema against one version of a subject or,
// without a version, against what registering it would be checked against.
func (r *Registry) checkCompatibility(req *http.Request) (any, error) {
	s, err := decodeSchema(req, false)
	if err != nil {
		return nil, err
	}
	return r.read(func(st *state) (any, error) {
		subject := req.PathValue("subject")
		against := st.versions(subject, false)
		if req.PathValue("version") != "" {
			ref, err := parseVersion(req.PathValue("version"))
			if err != nil {
				return nil, err
			}
			// Never against a soft-deleted version, whatever ?deleted
			// says, as Confluent's.
			switch {
			case len(st.versions(subject, false)) > 0:
				v, err := st.findVersion(subject, ref, false)
				if err != nil {
					return nil, err
				}
				against = []*version{v}
			case !ref.latest:
				return nil, errVersionNotFound(ref.number)
			} // the latest of none: nothing to be incompatible with, as Confluent's
		}
		problems := incompatibilities(st.level(subject), s.avro, against)
		result := struct {
			IsCompatible bool     `json:"is_compatible"`
			Messages     []string `json:"messages,omitempty"`
		}{IsCompatible: len(problems) == 0}
		if flag(req, "verbose") {
			result.Messages = problems
		}
		return result, nil
	})
}

// subjectParam returns the subject of a /config/{subject} path, or nil for
// the global /config.
func subjectParam(req *http.Request) *string {
	if s := req.PathValue("subject"); s != "" {
		return &s
	}
	return nil
}

func (r *Registry) getConfig(req *http.Request) (any, error) {
	return r.read(func(st *state) (any, error) {
		level := st.level("")
		if subject := subjectParam(req); subject != nil {
			if l, ok := st.levels[*subject]; ok {
				level = l
			} else if !flag(req, "defaultToGlobal") {
				return nil, errSubjectConfigNotFound(*subject)
			}
		}
		return map[string]string{"compatibilityLevel": level}, nil
	})
}

func (r *Registry) putConfig(req *http.Request) (any, error) {
	var body struct {
		Compatibility string `json:"compatibility"`
	}
	if err := decodeBody(req, &body); err != nil {
		return nil, err
	}
	level := strings.ToUpper(body.Compatibility)
	err := r.change(req.Context(), func(st *state) ([]record, error) {
		return st.setLevel(subjectParam(req), level)
	})
	if err != nil {
		return nil, err
	}
	return map[string]string{"compatibility": level}, nil
}

func (r *Registry) deleteConfig(req *http.Request) (any, error) {
	var old string
	err := r.change(req.Context(), func(st *state) (recs []record, err error) {
		old, recs, err = st.deleteLevel(subjectParam(req))
		return recs, err
	})
	if err != nil {
		return nil, err
	}
	return map[string]string{"compatibilityLevel": old}, nil
}

func getMode(*http.Request) (any, error) {
	return map[string]string{"mode": "READWRITE"}, nil
}

func putMode(req *http.Request) (any, error) {
	var body struct {
		Mode string `json:"mode"`
	}
	if err := decodeBody(req, &body); err != nil {
		return nil, err
	}
	if body.Mode != "READWRITE" {
		return nil, errInvalidMode(body.Mode)
	}
	return map[string]string{"mode": body.Mode}, nil
}
