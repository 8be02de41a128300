package load

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

// Metrics reads an instance's /metrics, and Total adds up a counter's or a
// gauge's series.
func TestMetrics(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/metrics" {
			http.NotFound(w, r)
			return
		}
		w.Write([]byte(`# TYPE http_forwarded_total counter
http_forwarded_total{outcome="forwarded"} 3
http_forwarded_total{outcome="moved"} 2
# TYPE standby_lag_records gauge
standby_lag_records 7
# TYPE transaction_records histogram
transaction_records_bucket{le="+Inf"} 4
transaction_records_sum 10
transaction_records_count 4
`))
	}))
	defer srv.Close()
	families, err := Metrics(t.Context(), srv.Client(), srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]float64{"http_forwarded_total": 5, "standby_lag_records": 7, "absent": 0} {
		if got := Total(families, name); got != want {
			t.Errorf("Total(%s): got %g, want %g", name, got, want)
		}
	}
	if h := families["transaction_records"].GetMetric()[0].GetHistogram(); h.GetSampleCount() != 4 || h.GetSampleSum() != 10 {
		t.Errorf("transaction_records: got count %d and sum %g, want 4 and 10", h.GetSampleCount(), h.GetSampleSum())
	}
	if _, err := Metrics(t.Context(), srv.Client(), srv.URL+"/nothing"); err == nil {
		t.Error("Metrics of a path that answers 404: got no error")
	}
}
