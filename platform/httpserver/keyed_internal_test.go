package httpserver

import (
	"net/http"
	"testing"
)

// Instances reach each other directly: a proxy for the way out (HTTP_PROXY)
// would get the forwards to peers too, and answer them with its own pages.
func TestForwardsUseNoProxy(t *testing.T) {
	if tr, ok := forwarder(nil).(*http.Transport); !ok || tr.Proxy != nil {
		t.Errorf("the forwarding transport: got %T with a proxy function, want an *http.Transport with none", forwarder(nil))
	}
}
