// Package web is the orchestrator's console for people: the pages under
// /ui/ (the sagas, one saga, the dead letters), their assets embedded in
// the binary, and each saga type's diagram drawn as SVG from its outline.
// The pages are plain HTML, CSS and JavaScript modules, with nothing to
// build: they read the console's JSON API (/api/...), GET /sagas/{id} and
// the operator actions, and follow the API's event streams.
package web

import (
	"embed"
	"html/template"
	"io/fs"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/kafkasaga/kafkasaga/platform/httpserver"
	"github.com/kafkasaga/kafkasaga/saga"
)

//go:embed assets
var assets embed.FS

// contentPolicy lets a page load only this server's scripts, styles and
// images: were some saga data or dead-letter payload ever put into a page
// as markup, the script in it still would not run.
const contentPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; " +
	"base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

var notFoundPage = template.Must(template.ParseFS(assets, "assets/notfound.html"))

// Register adds the console's pages to s, with the diagrams of outlines
// (the saga types the orchestrator runs). A saga page asks s itself for
// GET /sagas/{id} first, wherever the saga is kept, so that an unknown id
// gets a 404 page.
func Register(s *httpserver.Server, outlines []saga.Outline) {
	graphs := map[string]map[int]graph{} // by type and version
	current := map[string]int{}          // each type's first version given
	var types []string
	for _, o := range outlines {
		if graphs[o.Type] == nil {
			graphs[o.Type], current[o.Type] = map[int]graph{}, o.Version
			types = append(types, o.Type)
		}
		graphs[o.Type][o.Version] = outlineGraph(o)
	}
	static, _ := fs.Sub(assets, "assets") // a constant name: cannot fail
	files := http.StripPrefix("/ui/assets/", http.FileServerFS(static))

	s.Handle("GET /ui/{$}", page("list.html"))
	s.Handle("GET /ui/deadletters", page("deadletters.html"))
	s.Handle("GET /ui/sagas/{id}", func(w http.ResponseWriter, r *http.Request) {
		id := r.PathValue("id")
		if sagaStatus(s.Handler(), r, id) == http.StatusNotFound {
			notFound(w, "No saga has the id "+id+".")
			return
		}
		// Found, or not known yet (a 503): the page shows what GET /sagas/{id} says.
		page("saga.html")(w, r)
	})
	s.Handle("GET /ui/assets/", func(w http.ResponseWriter, r *http.Request) {
		secure(w)
		w.Header().Set("Cache-Control", "no-cache") // embedded files have no time to revalidate by
		files.ServeHTTP(w, r)
	})
	s.Handle("GET /ui/diagrams/{file}", func(w http.ResponseWriter, r *http.Request) {
		sagaType, ok := strings.CutSuffix(r.PathValue("file"), ".svg")
		versions, known := graphs[sagaType]
		if !ok || !known {
			httpserver.WriteJSON(w, http.StatusNotFound, map[string]any{
				"error": "no saga type " + r.PathValue("file") + ": the diagrams are <type>.svg", "allowed": types})
			return
		}
		// A saga runs under the version it started under, which may be an
		// earlier one with other steps: ?version= draws that one.
		version := current[sagaType]
		if v := r.URL.Query().Get("version"); v != "" {
			n, err := strconv.Atoi(v)
			if _, has := versions[n]; err != nil || !has {
				allowed := slices.Sorted(maps.Keys(versions))
				httpserver.WriteJSON(w, http.StatusBadRequest, map[string]any{
					"error": "saga type " + sagaType + " has no version " + v, "allowed": allowed})
				return
			}
			version = n
		}
		g := versions[version]
		step := r.URL.Query().Get("step")
		if step != "" && !slices.Contains(g.steps(), step) {
			httpserver.WriteJSON(w, http.StatusBadRequest, map[string]any{
				"error": "saga type " + sagaType + " has no step " + step, "allowed": g.steps()})
			return
		}
		secure(w)
		w.Header().Set("Content-Type", "image/svg+xml")
		_, _ = w.Write([]byte(g.svg(sagaType+" saga", step)))
	})
	s.Handle("GET /ui/", func(w http.ResponseWriter, r *http.Request) {
		notFound(w, "The console has no page "+r.URL.Path+".")
	})
}

// page serves one of the embedded pages.
func page(name string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		body, err := assets.ReadFile("assets/" + name)
		if err != nil { // the names are constants of this file: a test reads each
			httpserver.WriteError(w, http.StatusInternalServerError, err.Error())
			return
		}
		secure(w)
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = w.Write(body)
	}
}

func notFound(w http.ResponseWriter, msg string) {
	secure(w)
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(http.StatusNotFound)
	_ = notFoundPage.Execute(w, msg) // html/template escapes msg
}

// sagaStatus is the status of GET /sagas/{id} on h, which forwards it to
// the instance that keeps the saga.
func sagaStatus(h http.Handler, r *http.Request, id string) int {
	req, err := http.NewRequestWithContext(r.Context(), http.MethodGet, "/sagas/"+url.PathEscape(id), nil)
	if err != nil {
		return http.StatusBadRequest
	}
	var w statusWriter
	h.ServeHTTP(&w, req)
	return w.status
}

// statusWriter keeps the status of an answer and drops its body.
type statusWriter struct {
	header http.Header
	status int
}

func (w *statusWriter) Header() http.Header {
	if w.header == nil {
		w.header = http.Header{}
	}
	return w.header
}

func (w *statusWriter) WriteHeader(status int) {
	if w.status == 0 {
		w.status = status
	}
}

func (w *statusWriter) Write(b []byte) (int, error) {
	w.WriteHeader(http.StatusOK)
	return len(b), nil
}

func secure(w http.ResponseWriter) {
	w.Header().Set("Content-Security-Policy", contentPolicy)
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Referrer-Policy", "same-origin")
}
