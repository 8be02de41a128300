package web_test

import (
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/kafkasaga/kafkasaga/orchestrator/console/web"
	"github.com/kafkasaga/kafkasaga/orchestrator/service"
	"github.com/kafkasaga/kafkasaga/platform/httpserver"
	"github.com/kafkasaga/kafkasaga/saga"
)

// serve runs the console's pages for the orchestrator's saga types, beside
// a GET /sagas/{id} that knows the one saga id "known".
func serve(t *testing.T, outlines ...saga.Outline) *httptest.Server {
	t.Helper()
	s, err := httpserver.New(httpserver.Config{Addr: "127.0.0.1:0"}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	s.Handle("GET /sagas/{id}", func(w http.ResponseWriter, r *http.Request) {
		if r.PathValue("id") != "known" {
			httpserver.WriteError(w, http.StatusNotFound, "saga not found")
			return
		}
		httpserver.WriteJSON(w, http.StatusOK, map[string]string{"sagaId": "known"})
	})
	if len(outlines) == 0 {
		for _, o := range service.Outlines() {
			outlines = append(outlines, o.Outline)
		}
	}
	web.Register(s, outlines)
	s.MarkReady()
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(srv.Close)
	return srv
}

func get(t *testing.T, url string) (*http.Response, string) {
	t.Helper()
	res, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res, string(body)
}

// TestPages: each page answers with HTML under the content policy that
// keeps injected script inert; an unknown saga id, or page, is a 404 page
// that shows the id as text.
func TestPages(t *testing.T) {
	srv := serve(t)
	tests := []struct {
		path       string
		wantStatus int
		wantType   string
		wantBody   string
	}{
		{"/ui/", http.StatusOK, "text/html", `src="/ui/assets/list.js"`},
		{"/ui/deadletters", http.StatusOK, "text/html", `src="/ui/assets/deadletters.js"`},
		{"/ui/sagas/known", http.StatusOK, "text/html", `src="/ui/assets/saga.js"`},
		{"/ui/sagas/%3Cscript%3Ex%3C%2Fscript%3E", http.StatusNotFound, "text/html", "No saga has the id &lt;script&gt;x&lt;/script&gt;."},
		{"/ui/nothing", http.StatusNotFound, "text/html", "The console has no page /ui/nothing."},
		{"/ui/assets/list.js", http.StatusOK, "text/javascript", "import"},
		{"/ui/assets/console.css", http.StatusOK, "text/css", "body"},
		{"/ui/assets/none.js", http.StatusNotFound, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			res, body := get(t, srv.URL+tt.path)
			if res.StatusCode != tt.wantStatus || !strings.HasPrefix(res.Header.Get("Content-Type"), tt.wantType) || !strings.Contains(body, tt.wantBody) {
				t.Fatalf("GET %s: got %d %s %.200q, want %d %s containing %q", tt.path, res.StatusCode, res.Header.Get("Content-Type"), body, tt.wantStatus, tt.wantType, tt.wantBody)
			}
			if csp := res.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") || strings.Contains(csp, "unsafe") {
				t.Errorf("GET %s: Content-Security-Policy %q, want script-src 'self' and nothing unsafe", tt.path, csp)
			}
		})
	}
	// The bare /ui leads to the list.
	res, _ := get(t, srv.URL+"/ui")
	if res.Request.URL.Path != "/ui/" || res.StatusCode != http.StatusOK {
		t.Errorf("GET /ui: ended at %s with %d, want /ui/ with 200", res.Request.URL.Path, res.StatusCode)
	}
}

// TestScriptsMakeNoMarkup: the pages build what they show with
// createElement and textContent; nothing in them parses a string as HTML
// or code, so saga data and dead-letter payloads cannot become markup.
func TestScriptsMakeNoMarkup(t *testing.T) {
	unsafe := regexp.MustCompile(`innerHTML|outerHTML|insertAdjacentHTML|document\.write|\beval\(|new Function|setAttribute\("on`)
	scripts, err := filepath.Glob("assets/*.js")
	if err != nil || len(scripts) == 0 {
		t.Fatalf("no scripts in assets/: %v", err)
	}
	for _, name := range scripts {
		b, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		if m := unsafe.Find(b); m != nil {
			t.Errorf("%s uses %s", name, m)
		}
	}
}

// TestPagesLoadOnlyWhatIsEmbedded: every asset a page or script refers to
// is served.
func TestPagesLoadOnlyWhatIsEmbedded(t *testing.T) {
	srv := serve(t)
	refs := regexp.MustCompile(`(?:src|href)="(/ui/assets/[^"]+)"|from "\./([^"]+)"`)
	err := fs.WalkDir(os.DirFS("assets"), ".", func(name string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(filepath.Join("assets", name))
		if err != nil {
			return err
		}
		for _, m := range refs.FindAllStringSubmatch(string(b), -1) {
			path := m[1]
			if path == "" {
				path = "/ui/assets/" + m[2]
			}
			if res, _ := get(t, srv.URL+path); res.StatusCode != http.StatusOK {
				t.Errorf("%s refers to %s: got %d", name, path, res.StatusCode)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// svgDoc is what the tests read of a diagram.
type svgDoc struct {
	Groups []struct {
		Class   string   `xml:"class,attr"`
		ID      string   `xml:"id,attr"`
		Step    string   `xml:"data-step,attr"`
		Current string   `xml:"data-current,attr"`
		From    string   `xml:"data-from,attr"`
		To      string   `xml:"data-to,attr"`
		Label   string   `xml:"data-label,attr"`
		Timeout string   `xml:"data-timeout,attr"`
		Texts   []string `xml:"text"`
	} `xml:"g"`
}

func diagram(t *testing.T, url string) svgDoc {
	t.Helper()
	res, body := get(t, url)
	if res.StatusCode != http.StatusOK || res.Header.Get("Content-Type") != "image/svg+xml" {
		t.Fatalf("GET %s: got %d %s %.200s, want 200 image/svg+xml", url, res.StatusCode, res.Header.Get("Content-Type"), body)
	}
	var doc svgDoc
	if err := xml.Unmarshal([]byte(body), &doc); err != nil {
		t.Fatalf("GET %s: not XML: %v", url, err)
	}
	return doc
}

var (
	mermaidNode = regexp.MustCompile(`^\s+(\w+)\(?\["(.*)"\]\)?$`)
	mermaidEdge = regexp.MustCompile(`^\s+(\w+) (-->|-\.->)(?:\|"(.*)"\|)? (\w+)$`)
	unescape    = strings.NewReplacer("#35;", "#", "#quot;", `"`, "#lt;", "<", "#gt;", ">", "#124;", "|", "#96;", "`",
		"#91;", "[", "#93;", "]", "#123;", "{", "#125;", "}")
)

// TestDiagramMatchesTheOutline: each saga type's SVG has the nodes, with
// their labels, and the edges, with theirs, of its Mermaid flowchart, the
// one docs/sagas shows.
func TestDiagramMatchesTheOutline(t *testing.T) {
	srv := serve(t)
	for _, o := range service.Outlines() {
		t.Run(o.Type, func(t *testing.T) {
			var wantNodes, wantEdges []string
			for _, line := range strings.Split(o.Mermaid(), "\n") {
				if m := mermaidNode.FindStringSubmatch(line); m != nil {
					wantNodes = append(wantNodes, m[1]+": "+unescape.Replace(m[2]))
				} else if m := mermaidEdge.FindStringSubmatch(line); m != nil {
					wantEdges = append(wantEdges, m[1]+" "+m[2]+" "+m[4]+": "+unescape.Replace(m[3]))
				}
			}
			var gotNodes, gotEdges []string
			for _, g := range diagram(t, srv.URL+"/ui/diagrams/"+o.Type+".svg").Groups {
				switch g.Class {
				case "node":
					gotNodes = append(gotNodes, g.ID+": "+strings.Join(g.Texts, "<br/>"))
				case "edge":
					arrow := "-->"
					if g.Timeout == "true" {
						arrow = "-.->"
					}
					if len(g.Texts) > 0 && g.Texts[0] != g.Label {
						t.Errorf("edge %s->%s shows %q, labelled %q", g.From, g.To, g.Texts[0], g.Label)
					}
					gotEdges = append(gotEdges, g.From+" "+arrow+" "+g.To+": "+g.Label)
				}
			}
			if len(wantNodes) < 3 || len(wantEdges) < 2 {
				t.Fatalf("read %d nodes and %d edges from the Mermaid, too few: the pattern misses its lines\n%s", len(wantNodes), len(wantEdges), o.Mermaid())
			}
			slices.Sort(wantNodes)
			slices.Sort(gotNodes)
			slices.Sort(wantEdges)
			slices.Sort(gotEdges)
			if !slices.Equal(gotNodes, wantNodes) {
				t.Errorf("nodes:\ngot  %q\nwant %q", gotNodes, wantNodes)
			}
			if !slices.Equal(gotEdges, wantEdges) {
				t.Errorf("edges:\ngot  %q\nwant %q", gotEdges, wantEdges)
			}
		})
	}
}

// TestDiagramHighlightsTheStep: ?step= marks one node current, the
// forward step, its compensation or the end; a step the saga type does not
// have, or a type it does not run, is refused with what it could be.
func TestDiagramHighlightsTheStep(t *testing.T) {
	srv := serve(t)
	// A step's node is named by its place in the definition, which a
	// step inserted before it moves.
	at := map[string]int{}
	for _, o := range service.Outlines() {
		if o.Type == "CreateOrder" {
			for i, s := range o.Steps {
				at[s.Name] = i
			}
		}
	}
	for _, tt := range []struct{ step, want string }{
		{"", ""},
		{"reserve_credit", fmt.Sprintf("step%d", at["reserve_credit"])},
		{"authorize_payment", fmt.Sprintf("step%d", at["authorize_payment"])},
		{"reserve_credit:compensate", fmt.Sprintf("undo%d", at["reserve_credit"])},
		{"COMPLETED", "completed"},
		{"REJECTED", "rejected"},
	} {
		doc := diagram(t, srv.URL+"/ui/diagrams/CreateOrder.svg?step="+tt.step)
		var current []string
		for _, g := range doc.Groups {
			if g.Current == "true" {
				current = append(current, g.ID)
			}
		}
		if want := []string{tt.want}; tt.want == "" && len(current) != 0 || tt.want != "" && !slices.Equal(current, want) {
			t.Errorf("step %q: got %v current, want %q", tt.step, current, tt.want)
		}
	}

	for _, tt := range []struct {
		path        string
		wantStatus  int
		wantAllowed string
	}{
		{"/ui/diagrams/CreateOrder.svg?step=nope", http.StatusBadRequest, "reserve_credit"},
		{"/ui/diagrams/Unknown.svg", http.StatusNotFound, "CreateOrder"},
		{"/ui/diagrams/CreateOrder.png", http.StatusNotFound, "CancelOrder"},
	} {
		res, body := get(t, srv.URL+tt.path)
		var e struct {
			Error   string   `json:"error"`
			Allowed []string `json:"allowed"`
		}
		if err := json.Unmarshal([]byte(body), &e); err != nil || res.StatusCode != tt.wantStatus || e.Error == "" || !slices.Contains(e.Allowed, tt.wantAllowed) {
			t.Errorf("GET %s: got %d %s, want %d JSON with an error and %s allowed", tt.path, res.StatusCode, body, tt.wantStatus, tt.wantAllowed)
		}
	}
}

// A saga runs under the version of the definition it started under: the
// diagram of that version is drawn with ?version=, the current one without.
func TestDiagramOfAnEarlierVersion(t *testing.T) {
	current := service.Outlines()[0].Outline
	earlier := current
	earlier.Version = current.Version - 1
	earlier.Steps = slices.Clone(current.Steps)
	earlier.Steps[1].Name = "an_old_step"
	srv := serve(t, current, earlier)
	base := srv.URL + "/ui/diagrams/" + current.Type + ".svg"

	doc := diagram(t, fmt.Sprintf("%s?version=%d&step=an_old_step", base, earlier.Version))
	var marked []string
	for _, g := range doc.Groups {
		if g.Current == "true" {
			marked = append(marked, g.ID)
		}
	}
	if !slices.Equal(marked, []string{"step1"}) {
		t.Errorf("version %d, step an_old_step: got %v current, want [step1]", earlier.Version, marked)
	}
	for _, q := range []string{"?step=an_old_step", fmt.Sprintf("?version=%d&step=an_old_step", current.Version)} {
		if res, body := get(t, base+q); res.StatusCode != http.StatusBadRequest {
			t.Errorf("GET %s: got %d %s, want 400: the current version has no an_old_step", q, res.StatusCode, body)
		}
	}
	res, body := get(t, base+"?version=99")
	var refused struct {
		Allowed []int `json:"allowed"`
	}
	if err := json.Unmarshal([]byte(body), &refused); res.StatusCode != http.StatusBadRequest || err != nil ||
		!slices.Equal(refused.Allowed, []int{earlier.Version, current.Version}) {
		t.Errorf("GET ?version=99: got %d %s, want 400 with the versions %d and %d allowed", res.StatusCode, body, earlier.Version, current.Version)
	}
}
