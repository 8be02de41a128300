//go:build browser

package system_test

// The console in a real browser: headless Chromium, driven by chromedp,
// against the whole system on the embedded broker and registry. Run by
// `make test-ui` (scripts/test-ui.sh), which installs Chromium when it is
// missing; CHROMIUM names the browser's binary.

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/google/uuid"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kafkasaga/kafkasaga/contracts"
)

// TestConsole opens the console while the system runs and checks that
// it follows the sagas and the dead letters live, that its operator
// actions act, and that it shows what it is given as text, never as
// markup.
func TestConsole(t *testing.T) {
	r := startSystem(t, withAdminToken)
	b := openBrowser(t)
	ada := r.createCustomer(t, "Ada", 5_000_000)

	t.Run("a saga reaches COMPLETED in the list and on its page without a reload", func(t *testing.T) {
		b.open(t, r.sagas+"/ui/")
		b.await(t, `document.querySelector("#live.on") !== null`, "the list follows the saga stream")
		// One after the other, each in the list before the next starts: the
		// list places them from the stream, newest first.
		var id, declined, unknown string
		for _, order := range []struct {
			id       *string
			customer string
			total    int64
		}{{&id, ada, 12_000}, {&declined, ada, paymentLimit + 1}, {&unknown, uuid.NewString(), 100}} {
			*order.id = r.createOrder(t, order.customer, order.total)
			b.await(t, fmt.Sprintf(`document.querySelector('tr[data-saga-id=%q]') !== null`, *order.id), "the row of saga "+*order.id)
		}
		for id, state := range map[string]string{id: "COMPLETED", declined: "REJECTED", unknown: "REJECTED"} {
			b.await(t, fmt.Sprintf(`document.querySelector('tr[data-saga-id=%q][data-state=%q]') !== null`, id, state),
				fmt.Sprintf("the row of saga %s to show %s", id, state))
		}
		b.await(t, `["started 3", "completed 1", "rejected 2"].every(want =>
			[...document.querySelectorAll("#chart text")].some(t => t.textContent === want))`, "the chart to count the three sagas")
		b.stillLoaded(t)
		b.screenshot(t, "list.png")
		// Placed from the stream one by one, the rows are in the API's order.
		checkRowsAsTheAPI(t, b, r, "")

		// Filtered by state, then searched by the start of an id.
		rows := `[...document.querySelectorAll("#sagas tbody tr")].map(tr => tr.dataset.sagaId + " " + tr.dataset.state).sort().join(", ")`
		b.do(t, chromedp.SetValue(chromedp.CSS(`#filters select[name="state"]`), "REJECTED"), chromedp.Click(chromedp.CSS(`#filters button`)))
		want := []string{declined + " REJECTED", unknown + " REJECTED"}
		slices.Sort(want)
		b.await(t, fmt.Sprintf(`%s === %q && location.search === "?state=REJECTED"`, rows, strings.Join(want, ", ")), "the list to show the two REJECTED sagas only")
		b.do(t, chromedp.SetValue(chromedp.CSS(`#filters select[name="state"]`), ""), chromedp.SendKeys(chromedp.CSS(`#filters input[name="q"]`), id[:8]),
			chromedp.Click(chromedp.CSS(`#filters button`)))
		b.await(t, fmt.Sprintf(`%s === %q`, rows, id+" COMPLETED"), "the search by id to find the approved order's saga")

		b.do(t, chromedp.Click(chromedp.CSS(fmt.Sprintf(`tr[data-saga-id=%q] a`, id))), chromedp.WaitReady(chromedp.CSS("#timeline")))
		b.await(t, `document.querySelector('#state[data-state="COMPLETED"]') !== null`, "the saga page shows COMPLETED")
		events := b.eval(t, `[...document.querySelectorAll("#timeline li")].map(li => li.dataset.event).join(" ")`)
		if want := "started CreditReserved PaymentAuthorized OrderApproved"; !inOrder(strings.Fields(events), strings.Fields(want)) {
			t.Errorf("timeline: got %q, want %q", events, want)
		}
		b.await(t, `(() => { const img = document.getElementById("diagram");
			return img.complete && img.naturalWidth > 0 && img.src.includes("CreateOrder.svg?version=") && img.src.endsWith("&step=COMPLETED"); })()`,
			"the diagram is drawn with COMPLETED highlighted")
		if data := b.eval(t, `document.getElementById("data").textContent`); !strings.Contains(data, ada) {
			t.Errorf("data: got %q, want the customer id %s in it", data, ada)
		}
		b.screenshot(t, "saga.png")
	})

	// Each page follows a stream; a browser opens six connections to a
	// host at most, so a page left for another must close its own.
	t.Run("the console still answers after more pages than a browser has connections", func(t *testing.T) {
		for i := range 8 {
			b.open(t, r.sagas+[]string{"/ui/", "/ui/deadletters"}[i%2])
			b.await(t, `document.querySelector("#live.on") !== null`, "the page to follow its stream")
		}
		b.do(t, chromedp.Evaluate[chromedp.Void](`fetch("/api/admin").then(r => { window.__answered = r.status; })`))
		b.await(t, `window.__answered === 200`, "GET /api/admin answered")
	})

	// The browser reconnects by itself only to a dropped stream: a
	// reconnection refused, as while the orchestrator restarts, closes it.
	t.Run("a page follows again after its stream's reconnection is refused", func(t *testing.T) {
		front := refusingFront(t, r)
		b.open(t, front.URL+"/ui/")
		b.await(t, `document.querySelector("#live.on") !== null`, "the list follows the saga stream")
		front.refusing.Store(true)
		front.drop()
		b.await(t, `document.querySelector("#live.off") !== null`, "the list to see its stream end")
		awaitRefused(t, &front.refused)
		front.refusing.Store(false)
		id := r.createOrder(t, ada, 100)
		b.await(t, fmt.Sprintf(`document.querySelector("#live.on") !== null &&
			document.querySelector('tr[data-saga-id=%q][data-state="COMPLETED"]') !== null`, id),
			"the list to follow again and show the saga started since, COMPLETED")
		b.stillLoaded(t)
	})

	// What the stream sent before it dropped is older than the list read
	// once it is back: a saga that ended in between showed, in a list of
	// running sagas, as running for good.
	t.Run("a filtered list read again after its stream dropped leaves out a saga that ended meanwhile", func(t *testing.T) {
		front := refusingFront(t, r)
		id, release := aSagaWaitingOnPayment(t, r, ada, 100)
		b.open(t, front.URL+"/ui/?state=RUNNING")
		row := fmt.Sprintf(`document.querySelector('tr[data-saga-id=%q]')`, id)
		b.await(t, `document.querySelector("#live.on") !== null && `+row+` !== null`, "the list to follow, the waiting saga in it")
		if status, body := r.act(t, r.sagas+"/sagas/"+id+"/retry", "ops-dave"); status != http.StatusOK { // a fresh event of it
			t.Fatalf("retry: %d %s", status, body)
		}
		b.await(t, row+`.textContent.includes("retrying")`, "the retry streamed to the list")
		front.refusing.Store(true)
		front.drop()
		awaitRefused(t, &front.refused)
		release()
		awaitIndexed(t, r, id, "COMPLETED")
		front.refusing.Store(false)
		b.await(t, `document.querySelector("#live.on") !== null && !document.getElementById("more").disabled`, "the list to follow again, read anew")
		if got := b.eval(t, `String(`+row+` !== null)`); got != "false" {
			t.Errorf("the saga that completed while the stream was down is listed among the RUNNING: %s", got)
		}
	})

	// A page whose first read of the list was refused (the console still
	// catching up) reads it, once its stream opens, with the filters of its
	// URL: it read every saga, and placed streamed ones against none.
	t.Run("a list first refused reads with its URL's filters once its stream opens", func(t *testing.T) {
		front := refusingFront(t, r)
		front.refusing.Store(true)
		b.open(t, front.URL+"/ui/?state=REJECTED")
		awaitRefused(t, &front.refusedLists)
		front.refusing.Store(false)
		b.await(t, `document.querySelector("#live.on") !== null && !document.getElementById("more").disabled &&
			document.querySelectorAll("#sagas tbody tr").length > 0`, "the list read once its stream opened")
		if got := b.eval(t, `[...document.querySelectorAll("#sagas tbody tr")].map(tr => tr.dataset.state).filter(s => s !== "REJECTED").join(" ")`); got != "" {
			t.Errorf("rows of a list filtered by ?state=REJECTED in states %q, want none but REJECTED", got)
		}
	})

	// A list read refused while the stream is open (an instance behind a
	// balancer still loading its index): the streamed sagas were placed
	// against the filters of no answer, so a list of REJECTED showed a
	// RUNNING saga, the error gone, and the list was not read again.
	t.Run("a list whose read is refused holds what its stream sends and reads again", func(t *testing.T) {
		front := refusingFront(t, r)
		front.refusingReads.Store(true)
		b.open(t, front.URL+"/ui/?state=REJECTED&step=approve_order")
		b.await(t, `document.querySelector("#live.on") !== null && document.getElementById("status").textContent === "not ready"`,
			"the list to follow its stream, its read refused")
		id, release := aSagaWaitingOnPayment(t, r, ada, 100)
		defer release()
		awaitIndexed(t, r, id, "RUNNING")
		refusedBefore := front.refusedLists.Load()
		awaitRefused(t, &front.refusedLists, refusedBefore+1) // read again since the saga was streamed
		if got := b.eval(t, `[...document.querySelectorAll("#sagas tbody tr")].map(tr => tr.dataset.state).join(" ") + "|" +
			document.getElementById("status").textContent`); got != "|not ready" {
			t.Errorf("rows and status of a list of REJECTED whose read is refused: %q, want none and the error", got)
		}
		front.refusingReads.Store(false)
		b.await(t, `document.getElementById("status").textContent.includes("match")`, "the list read once it is answered")
		if got := b.eval(t, `[...document.querySelectorAll("#sagas tbody tr")].map(tr => tr.dataset.state).filter(s => s !== "REJECTED").join(" ")`); got != "" {
			t.Errorf("rows of a list filtered by ?state=REJECTED in states %q, want none but REJECTED", got)
		}
		// The saga types' read was refused too: the URL's step, which
		// they bring, is kept all the same.
		if got := b.eval(t, `document.querySelector('#filters [name="step"]').value`); got != "approve_order" {
			t.Errorf("the step filter of the page's URL, the saga types' read refused: %q, want approve_order", got)
		}
	})

	// A saga's read refused (its partition moving): an ended saga's page
	// waits for no change, so it showed the error until reloaded.
	t.Run("a saga's page whose read is refused reads it again", func(t *testing.T) {
		front := refusingFront(t, r)
		id := r.createOrder(t, ada, 100)
		awaitIndexed(t, r, id, "COMPLETED")
		front.refusingReads.Store(true)
		b.open(t, front.URL+"/ui/sagas/"+id)
		b.await(t, `document.getElementById("status").textContent === "not ready"`, "the saga's read refused")
		front.refusingReads.Store(false)
		b.await(t, `document.querySelector('#state[data-state="COMPLETED"]') !== null && document.getElementById("status").textContent === ""`,
			"the saga read again, COMPLETED")
	})

	// The rows' ages move with the clock in place: a row made anew every
	// few seconds lost the keyboard's focus on its link.
	t.Run("the list keeps the focus while its ages move", func(t *testing.T) {
		id := r.createOrder(t, ada, 100)
		b.open(t, r.sagas+"/ui/")
		link := fmt.Sprintf(`document.querySelector('tr[data-saga-id=%q] a')`, id)
		// Ended: no transition of it makes its row anew meanwhile.
		b.await(t, fmt.Sprintf(`document.querySelector("#live.on") !== null && document.querySelector('tr[data-saga-id=%q][data-state="COMPLETED"]') !== null`, id),
			"the list with the saga, COMPLETED")
		b.do(t, chromedp.Focus(chromedp.CSS(fmt.Sprintf(`tr[data-saga-id=%q] a`, id))))
		age := fmt.Sprintf(`document.querySelector('tr[data-saga-id=%q]').cells[6].textContent`, id)
		before := b.eval(t, age)
		b.await(t, fmt.Sprintf(`%s !== %q`, age, before), "the saga's age to move")
		if got := b.eval(t, `String(document.activeElement === `+link+`)`); got != "true" {
			t.Errorf("the saga's link has the focus: %s, want true", got)
		}
	})

	// A list left open keeps a page's worth of rows as the stream brings
	// new sagas, letting the oldest go to the next page, where it grew by
	// every saga started until the tab gave up.
	t.Run("a list left open keeps a page of rows, the oldest listed again by Older", func(t *testing.T) {
		b.open(t, r.sagas+"/ui/")
		rows := `document.querySelectorAll("#sagas tbody tr").length`
		b.await(t, `document.querySelector("#live.on") !== null && !document.getElementById("more").disabled`, "the list read and following")
		n, err := strconv.Atoi(b.eval(t, `String(`+rows+`)`))
		if err != nil || n >= 50 {
			t.Fatalf("rows at the start: %d %v, want fewer than a page (50)", n, err)
		}
		var last string
		for range 50 - n + 3 {
			last = r.createOrder(t, ada, 100)
		}
		// Started within a millisecond of another (one batch of the
		// orchestrator's), the last saga may sort after it: looked up by id.
		b.await(t, fmt.Sprintf(`%s === 50 && !document.getElementById("more").hidden &&
			document.querySelector('tr[data-saga-id=%q]') !== null`, rows, last), "a page of rows, the newest in it, Older offered")
		b.do(t, chromedp.Click(chromedp.CSS("#more")))
		b.await(t, rows+` === 53`, "Older to list the three let go")
		checkRowsAsTheAPI(t, b, r, "?limit=53")
		// What Older listed stays: one more saga lets one row go, not three.
		last = r.createOrder(t, ada, 100)
		b.await(t, fmt.Sprintf(`document.querySelector('tr[data-saga-id=%q]') !== null`, last), "the new saga listed")
		if got := b.eval(t, `String(`+rows+`)`); got != "53" {
			t.Errorf("rows once one more saga started: %s, want 53, as many as Older showed", got)
		}
	})

	// A page opens its stream before it reads what it shows: a change
	// made between a read and a stream opened after it would reach it
	// neither way. The change is a saga that starts and ends while the
	// page's stream waits to open: after it, no event tells of it.
	t.Run("a saga that ends while the list opens its stream is listed", func(t *testing.T) {
		target, err := url.Parse(r.sagas)
		if err != nil {
			t.Fatal(err)
		}
		proxy := httputil.NewSingleHostReverseProxy(target)
		arrived, changed := make(chan struct{}), make(chan struct{})
		var first, held, readWhileHeld atomic.Bool
		front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			switch {
			case req.URL.Path == "/api/sagas/stream" && first.CompareAndSwap(false, true):
				held.Store(true)
				close(arrived)
				select { // the test changes the saga before the stream is passed on
				case <-changed:
				case <-req.Context().Done():
					return
				}
				held.Store(false)
			case req.URL.Path == "/api/sagas" && held.Load():
				readWhileHeld.Store(true)
			}
			proxy.ServeHTTP(w, req)
		}))
		t.Cleanup(func() { front.CloseClientConnections(); front.Close() })

		b.open(t, front.URL+"/ui/")
		select {
		case <-arrived:
		case <-time.After(30 * time.Second):
			t.Fatal("the page did not open its stream within 30s")
		}
		id := r.createOrder(t, ada, 100)
		awaitIndexed(t, r, id, "COMPLETED") // announced already
		if readWhileHeld.Load() {
			t.Fatal("the page read its list while its stream was held (past its 5 s wait): this subtest did not test the order")
		}
		close(changed)
		b.await(t, fmt.Sprintf(`document.querySelector("#live.on") !== null &&
			document.querySelector('tr[data-saga-id=%q][data-state="COMPLETED"]') !== null`, id),
			"the list to follow its stream and show the saga that ended as it opened, COMPLETED")
	})

	// A stream slow to open (a proxy that holds it) lets the page read
	// its list first, after 5 s; once the stream opens, the page reads
	// the list again: a change made in between reached it neither way.
	t.Run("a saga that ends before a slow stream opens is listed once it does", func(t *testing.T) {
		target, err := url.Parse(r.sagas)
		if err != nil {
			t.Fatal(err)
		}
		proxy := httputil.NewSingleHostReverseProxy(target)
		read, changed := make(chan struct{}), make(chan struct{})
		var first, firstRead atomic.Bool
		front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			switch {
			case req.URL.Path == "/api/sagas/stream" && first.CompareAndSwap(false, true):
				select { // held until the test changed a saga after the page's read
				case <-changed:
				case <-req.Context().Done():
					return
				}
			case req.URL.Path == "/api/sagas" && firstRead.CompareAndSwap(false, true):
				defer close(read)
			}
			proxy.ServeHTTP(w, req)
		}))
		t.Cleanup(func() { front.CloseClientConnections(); front.Close() })

		b.open(t, front.URL+"/ui/")
		select {
		case <-read:
		case <-time.After(30 * time.Second):
			t.Fatal("the page did not read its list within 30s")
		}
		id := r.createOrder(t, ada, 100)
		awaitIndexed(t, r, id, "COMPLETED")
		close(changed)
		b.await(t, fmt.Sprintf(`document.querySelector("#live.on") !== null &&
			document.querySelector('tr[data-saga-id=%q][data-state="COMPLETED"]') !== null`, id),
			"the list to show, once its stream opened, the saga that ended before")
	})

	t.Run("the list shows what the stream says while it reads the list, filtered as submitted", func(t *testing.T) {
		b.open(t, r.sagas+"/ui/")
		b.await(t, `document.querySelector("#live.on") !== null`, "the list follows the saga stream")
		// The list's next read is held back until the test lets it go: its
		// answer is older than what the stream says meanwhile.
		b.do(t, chromedp.Evaluate[chromedp.Void](`(() => {
			const real = window.fetch;
			window.__held = 0;
			const released = new Promise(ok => { window.__release = ok; });
			window.fetch = async (...args) => {
				const res = await real(...args);
				if (String(args[0]).startsWith("/api/sagas?") && window.__held++ === 0) await released;
				return res;
			};
			window.__ended = new Set();
			const own = new EventSource("/api/sagas/stream");
			addEventListener("pagehide", () => own.close());
			own.addEventListener("saga", e => { const s = JSON.parse(e.data); if (s.state === "COMPLETED") window.__ended.add(s.sagaId); });
		})()`), chromedp.Click(chromedp.CSS(`#filters button`)))
		b.await(t, `window.__held === 1`, "the list to read itself again")
		during := r.createOrder(t, ada, 100)
		b.await(t, fmt.Sprintf(`window.__ended.has(%q)`, during), "the stream to say the saga started during the read ended")
		b.do(t, chromedp.Evaluate[chromedp.Void](`window.__release()`))
		b.await(t, fmt.Sprintf(`document.querySelector('tr[data-saga-id=%q][data-state="COMPLETED"]') !== null`, during),
			"the saga the stream announced during the read, COMPLETED")

		// A filter chosen but not submitted filters nothing yet.
		b.do(t, chromedp.SetValue(chromedp.CSS(`#filters select[name="state"]`), "REJECTED"))
		after := r.createOrder(t, ada, 100)
		b.await(t, fmt.Sprintf(`document.querySelector('tr[data-saga-id=%q][data-state="COMPLETED"]') !== null`, after),
			"a COMPLETED saga in the list, its REJECTED filter not submitted")
		b.stillLoaded(t)
	})

	// Behind a load balancer, a page may follow one instance's stream and
	// read its list from another, a fetch or so behind: an answer older
	// than a change the page was streamed before it asked. A saga that
	// ended then changes no more: shown as the answer says, it would stay
	// RUNNING until a reload.
	t.Run("a list answer older than what was streamed does not undo it", func(t *testing.T) {
		id, release := aSagaWaitingOnPayment(t, r, ada, 100)
		b.open(t, r.sagas+"/ui/")
		b.await(t, fmt.Sprintf(`document.querySelector("#live.on") !== null &&
			document.querySelector('tr[data-saga-id=%q][data-state="RUNNING"]') !== null`, id), "the list to show the saga waiting")
		// The page's list answers are, once armed, one read now, while the
		// saga runs: the answer of an instance behind.
		b.do(t, chromedp.Evaluate[chromedp.Void](`(() => {
			const real = window.fetch;
			window.__stale = null;
			window.__staleServed = 0;
			real("/api/sagas?").then(res => res.text()).then(body => { window.__stale = body; });
			window.fetch = async (...args) => {
				if (window.__armed && String(args[0]).startsWith("/api/sagas?")) {
					window.__staleServed++;
					return new Response(window.__stale, { headers: { "Content-Type": "application/json" } });
				}
				return real(...args);
			};
		})()`))
		b.await(t, fmt.Sprintf(`window.__stale !== null && JSON.parse(window.__stale).sagas.some(s => s.sagaId === %q && s.state === "RUNNING")`, id),
			"the list answer of the saga running, kept")
		release()
		awaitIndexed(t, r, id, "COMPLETED")
		b.await(t, fmt.Sprintf(`document.querySelector('tr[data-saga-id=%q][data-state="COMPLETED"]') !== null`, id),
			"the stream to show the saga COMPLETED")
		b.do(t, chromedp.Evaluate[chromedp.Void](`window.__armed = true`), chromedp.Click(chromedp.CSS(`#filters button`)))
		// #more is disabled from a read's start until its answer is shown.
		b.await(t, fmt.Sprintf(`window.__staleServed >= 1 && !document.getElementById("more").disabled &&
			document.querySelector('tr[data-saga-id=%q][data-state="COMPLETED"]') !== null`, id),
			"the saga COMPLETED, as streamed, after the older answer that says it runs")
		b.stillLoaded(t)
	})

	t.Run("a change announced while the saga's page reads the saga is shown", func(t *testing.T) {
		id, _ := aSagaWaitingOnPayment(t, r, ada, 6_000)
		b.open(t, r.sagas+"/ui/sagas/"+id)
		b.await(t, `document.querySelector('#state[data-state="RUNNING"]') !== null`, "the saga page to show it waiting")
		// The page's next read of the saga is held back until the test lets
		// it go; a stream of the test's own sees the abort's event arrive.
		b.do(t, chromedp.Evaluate[chromedp.Void](fmt.Sprintf(`(() => {
			const real = window.fetch;
			window.__reads = 0;
			window.__release = null;
			const released = new Promise(ok => { window.__release = ok; });
			window.fetch = async (...args) => {
				const res = await real(...args);
				if (String(args[0]).startsWith("/sagas/") && (args[1] || {}).method !== "POST" && window.__reads++ === 0) await released;
				return res;
			};
			const own = new EventSource("/api/sagas/stream");
			addEventListener("pagehide", () => own.close());
			own.addEventListener("saga", e => {
				const s = JSON.parse(e.data);
				if (s.sagaId === %q && s.state === "COMPENSATING") window.__sawAbort = true;
			});
		})()`, id)))
		if status, body := r.act(t, r.sagas+"/sagas/"+id+"/retry", "ops-dave"); status != http.StatusOK {
			t.Fatalf("retry: %d %s", status, body)
		}
		b.await(t, `window.__reads === 1`, "the page to read the saga after the retry")
		if status, body := r.act(t, r.sagas+"/sagas/"+id+"/abort", "ops-dave"); status != http.StatusOK {
			t.Fatalf("abort: %d %s", status, body)
		}
		b.await(t, `window.__sawAbort === true`, "the abort's event to reach the page")
		b.do(t, chromedp.Evaluate[chromedp.Void](`window.__release()`))
		b.await(t, `document.querySelector('#state[data-state="COMPENSATING"]') !== null`,
			"the saga page to show the abort announced while it read the retry")
	})

	t.Run("an action on a saga that moved on since its page showed it is refused", func(t *testing.T) {
		id, _ := aSagaWaitingOnPayment(t, r, ada, 5_000)
		b.open(t, r.sagas+"/ui/sagas/"+id)
		b.await(t, `document.querySelector('#state[data-state="RUNNING"]') !== null && !document.getElementById("actions").hidden &&
			document.getElementById("summary").textContent.includes("a reply to AuthorizePayment")`, "the saga page to show it waiting, with its actions")
		// The page reads nothing new until the test lets it: it shows the
		// saga on its first attempt while another operator retries it.
		b.do(t, chromedp.Evaluate[chromedp.Void](`(() => {
			const real = window.fetch;
			const released = new Promise(ok => { window.__release = ok; });
			window.fetch = async (...args) => {
				const res = await real(...args);
				if (String(args[0]).startsWith("/sagas/") && (args[1] || {}).method !== "POST") await released;
				return res;
			};
		})()`))
		if status, body := r.act(t, r.sagas+"/sagas/"+id+"/retry", "ops-dave"); status != http.StatusOK {
			t.Fatalf("retry: %d %s", status, body)
		}
		b.signIn(t)
		b.do(t, chromedp.Click(chromedp.CSS("#retry")))
		b.await(t, `document.getElementById("action-result").textContent.startsWith("Retry: ") &&
			document.getElementById("action-result").textContent !== "Retry: …"`, "the retry answered")
		if got, want := b.eval(t, `document.getElementById("action-result").textContent`), "it has moved on: it waits on authorize_payment, attempt 2"; !strings.Contains(got, want) {
			t.Errorf("the page's retry: got %q, want it refused: %q", got, want)
		}
		b.do(t, chromedp.Evaluate[chromedp.Void](`window.__release()`))
		b.await(t, `[...document.querySelectorAll("#summary dd")].some(dd => dd.textContent === "2")`, "the page to show the saga on its second attempt")
		var got struct {
			Attempt int `json:"attempt"`
		}
		r.getJSON(t, r.sagas+"/sagas/"+id, &got)
		if got.Attempt != 2 {
			t.Errorf("attempt: got %d, want 2: the page's retry refused", got.Attempt)
		}
	})

	t.Run("a retry and an abort from the saga's page, the saga compensating live", func(t *testing.T) {
		id, release := aSagaWaitingOnPayment(t, r, ada, 7_000)

		b.open(t, r.sagas+"/ui/sagas/"+id)
		b.await(t, `document.querySelector('#state[data-state="RUNNING"]') !== null && !document.getElementById("actions").hidden &&
			document.getElementById("summary").textContent.includes("a reply to AuthorizePayment")`, "the saga page to show it waiting, with its actions")
		b.signIn(t)
		b.do(t, chromedp.Click(chromedp.CSS("#retry")))
		b.await(t, `document.getElementById("action-result").textContent === "Retry: done" &&
			[...document.querySelectorAll("#timeline li")].some(li => li.dataset.event === "retry" && li.textContent.includes("by ops-José"))`,
			"the retry in the timeline, by ops-José (a name beyond ASCII)")
		b.do(t, chromedp.Click(chromedp.CSS("#abort")))
		b.await(t, `document.getElementById("abort").dataset.armed === "1"`, "the abort button to ask for a second click")
		b.do(t, chromedp.Click(chromedp.CSS("#abort")))
		b.await(t, `document.getElementById("action-result").textContent === "Abort: done"`, "the abort answered")
		b.await(t, `document.querySelector('#state[data-state="COMPENSATING"]') !== null && document.getElementById("abort").hidden &&
			!document.getElementById("retry").hidden`, "the abort, refused while compensating, no longer offered; the retry still")
		release()
		b.await(t, `document.querySelector('#state[data-state="REJECTED"]') !== null && document.getElementById("actions").hidden`,
			"the saga page to show the saga REJECTED, as it compensated")
		b.stillLoaded(t)
		events := b.eval(t, `[...document.querySelectorAll("#timeline li")].map(li => li.dataset.event).filter(e => e !== "timeout").join(" ")`)
		if want := "started CreditReserved retry abort PaymentCancelled CreditReleased OrderRejected"; !inOrder(strings.Fields(events), strings.Fields(want)) {
			t.Errorf("timeline: got %q, want %q in that order", events, want)
		}
		b.await(t, `(() => { const img = document.getElementById("diagram");
			return img.complete && img.naturalWidth > 0 && img.src.includes("CreateOrder.svg?version=") && img.src.endsWith("&step=REJECTED"); })()`,
			"the diagram with REJECTED highlighted")
		if o := r.awaitOrderEnd(t, id, 30*time.Second); o.State != "REJECTED" || o.RejectionReason != "ABORTED" {
			t.Errorf("order: got %s %q, want REJECTED ABORTED", o.State, o.RejectionReason)
		}
		b.screenshot(t, "saga-aborted.png")
	})

	t.Run("an unknown saga id is a 404 page", func(t *testing.T) {
		b.open(t, r.sagas+"/ui/sagas/"+uuid.NewString())
		if got := b.eval(t, `document.querySelector("h1").textContent`); got != "Not found" {
			t.Errorf("heading: got %q, want Not found", got)
		}
	})

	t.Run("dead letters appear live, their payload decoded, their key and headers as text", func(t *testing.T) {
		b.open(t, r.sagas+"/ui/deadletters")
		b.await(t, `document.querySelector("#live.on") !== null`, "the page follows the dead-letter stream")
		script := `<script>window.__xss=1</script>`
		img := `<img src=x onerror="window.__xss=2">`
		orderID := "xss-" + uuid.NewString()
		client, s := rawClients(t, r)
		// A record its consumer (the orchestrator's start of sagas) does not
		// take: dead-lettered, and decoded by the console.
		unexpected, err := s.Encode(contracts.TopicOrderEvents, &contracts.ApproveOrder{OrderID: orderID})
		if err != nil {
			t.Fatal(err)
		}
		headers := []kgo.RecordHeader{{Key: "note", Value: []byte(img)}, {Key: img, Value: []byte(script)}}
		for _, rec := range []*kgo.Record{
			{Topic: contracts.TopicOrderEvents, Key: []byte(script), Value: []byte("not avro " + img), Headers: headers},
			{Topic: contracts.TopicOrderEvents, Key: []byte(img), Value: unexpected, Headers: headers},
		} {
			if err := client.ProduceSync(t.Context(), rec).FirstErr(); err != nil {
				t.Fatal(err)
			}
		}

		keys := `[...document.querySelectorAll("#deadletters code.key")].map(e => e.textContent)`
		b.await(t, fmt.Sprintf(`%s.includes(%q) && %s.includes(%q)`, keys, script, keys, img), "both dead letters, their keys shown as written")
		decoded := fmt.Sprintf(`[...document.querySelectorAll("#deadletters article")].some(a =>
			a.querySelector("h2").textContent.startsWith("ApproveOrder") && a.querySelector("pre.value").textContent.includes(%q))`, orderID)
		b.await(t, decoded, "the ApproveOrder dead letter decoded")
		headerText := fmt.Sprintf(`[...document.querySelectorAll("#deadletters table.headers")].some(t => t.textContent.includes(%q) && t.textContent.includes(%q))`, img, script)
		b.await(t, headerText, "the headers shown as written")
		if got := b.eval(t, `String(window.__xss) + " " + document.querySelectorAll("#deadletters img, #deadletters script").length`); got != "undefined 0" {
			t.Errorf("window.__xss and the img and script elements among the dead letters: got %s, want undefined 0", got)
		}
		b.stillLoaded(t)
		b.screenshot(t, "deadletters.png")

		// Replayed from the page: back to order.events, where it is
		// dead-lettered again, now marked replayed_from. The new dead
		// letter comes first at once, so the one replayed is found by its
		// place in the dead-letter topic.
		at := b.eval(t, fmt.Sprintf(`(() => { const a = [...document.querySelectorAll("#deadletters article")].find(a =>
			a.querySelector("pre.value") && a.querySelector("pre.value").textContent.includes(%q));
			return "article[data-partition=\"" + a.dataset.partition + "\"][data-offset=\"" + a.dataset.offset + "\"]"; })()`, orderID))
		b.signIn(t)
		b.do(t, chromedp.Click(chromedp.CSS(at+" button.replay")))
		status := fmt.Sprintf(`document.querySelector(%q).querySelector(".status").textContent`, at)
		b.await(t, status+` !== "" && `+status+` !== "replaying…"`, "the replay answered")
		if got := b.eval(t, status); !strings.HasPrefix(got, "replayed to order.events") {
			t.Fatalf("replay: got %q, want replayed to order.events", got)
		}
		if got := b.eval(t, fmt.Sprintf(`String(document.querySelector(%q).disabled)`, at+" button.replay")); got != "true" {
			t.Errorf("the replay button once replayed: disabled %s, want true (each click writes the message again)", got)
		}
		b.await(t, fmt.Sprintf(`[...document.querySelectorAll("#deadletters article")].some(a =>
			a.querySelector("pre.value") && a.querySelector("pre.value").textContent.includes(%q) && a.textContent.includes(%q))`,
			orderID, contracts.HeaderReplayedFrom), "the replayed message dead-lettered again, marked "+contracts.HeaderReplayedFrom)
	})

	// A dead-letter list read refused while the stream is open: a letter
	// streamed then cleared the error and was shown alone, as if it were
	// every letter, and the list was not read again.
	t.Run("a dead-letter page whose read is refused holds what its stream sends and reads again", func(t *testing.T) {
		front := refusingFront(t, r)
		front.refusingReads.Store(true)
		b.open(t, front.URL+"/ui/deadletters")
		b.await(t, `document.querySelector("#live.on") !== null && document.getElementById("status").textContent === "not ready"`,
			"the page to follow its stream, its read refused")
		key := deadLetters(t, r, 1)[0]
		refusedBefore := front.refusedLists.Load()
		awaitRefused(t, &front.refusedLists, refusedBefore+1)
		if got := b.eval(t, `document.querySelectorAll("#deadletters article").length + "|" + document.getElementById("status").textContent`); got != "0|not ready" {
			t.Errorf("letters and status of a page whose read is refused: %q, want none and the error", got)
		}
		front.refusingReads.Store(false)
		b.await(t, fmt.Sprintf(`[...document.querySelectorAll("#deadletters code.key")].some(e => e.textContent === %q) &&
			document.getElementById("status").textContent === ""`, key), "the letters read once they are answered, the new one among them")
	})

	// Left open, the page kept every letter its stream sent, each up to
	// some hundred KB: it keeps as many as it read, or 50, and Older lists
	// those it let go.
	t.Run("a dead-letter page left open keeps a page of letters, the oldest listed again by Older", func(t *testing.T) {
		b.open(t, r.sagas+"/ui/deadletters")
		b.await(t, `document.querySelector("#live.on") !== null && !document.getElementById("more").disabled`, "the page read, following its stream")
		read := b.eval(t, `String(document.querySelectorAll("#deadletters article").length)`)
		if read != "50" && b.eval(t, `String(document.getElementById("more").hidden)`) != "true" {
			t.Fatalf("read %s letters with more to list: the page's first read lists 50", read)
		}
		keys := deadLetters(t, r, 60)
		// The newest letter is the one dead-lettered last, which need not
		// be the one written last: the orchestrator may take the records
		// of one partition before another's.
		var newest string
		eventually(t, 30*time.Second, func() error {
			var page struct {
				DeadLetters []consoleDeadLetter `json:"deadLetters"`
			}
			r.getJSON(t, r.sagas+"/api/deadletters?limit=100", &page)
			listed := map[string]bool{}
			for _, d := range page.DeadLetters {
				listed[d.Key] = true
			}
			for _, k := range keys {
				if !listed[k] {
					return fmt.Errorf("%s not dead-lettered yet", k)
				}
			}
			newest = page.DeadLetters[0].Key
			return nil
		})
		cards := `document.querySelectorAll("#deadletters article")`
		b.await(t, fmt.Sprintf(`%s.length === 50 && %s[0].querySelector("code.key").textContent === %q`, cards, cards, newest), "the newest letter streamed, first")
		if got := b.eval(t, fmt.Sprintf(`%s.length + " " + document.getElementById("more").hidden`, cards)); got != "50 false" {
			t.Fatalf("letters shown and Older hidden: %s, want 50 false", got)
		}
		b.do(t, chromedp.Click(chromedp.CSS("#more")))
		b.await(t, fmt.Sprintf(`%s.length > 50`, cards), "Older to list the letters let go")
		if got := b.eval(t, fmt.Sprintf(`String(new Set([...%s].map(a => a.dataset.partition + "/" + a.dataset.offset)).size === %s.length)`, cards, cards)); got != "true" {
			t.Errorf("a letter listed twice after Older")
		}
	})

	// A letter streamed while Older reads is added once its answer is:
	// added at once, it let the oldest letter shown go, whose cursor
	// Older's request had already sent, and that letter was listed no
	// more, by Older either.
	t.Run("a letter streamed while Older reads lets no letter go unlisted", func(t *testing.T) {
		b.open(t, r.sagas+"/ui/deadletters")
		cards := `document.querySelectorAll("#deadletters article")`
		b.await(t, `document.querySelector("#live.on") !== null && !document.getElementById("more").disabled`, "the page read, following its stream")
		if b.eval(t, `String(document.getElementById("more").hidden)`) == "true" {
			deadLetters(t, r, 51)
			b.open(t, r.sagas+"/ui/deadletters")
			b.await(t, fmt.Sprintf(`document.querySelector("#live.on") !== null && !document.getElementById("more").hidden && %s.length === 50`, cards),
				"the page read, with more to list")
		}
		last := b.eval(t, fmt.Sprintf(`(() => { const a = %s[%s.length - 1]; return a.dataset.partition + "/" + a.dataset.offset; })()`, cards, cards))
		// Older's answer waits until released; a stream of the page's own
		// says when the new letter was sent.
		b.do(t, chromedp.Evaluate[chromedp.Void](`(() => {
			const real = window.fetch;
			window.__olderAsked = 0;
			window.__streamed = [];
			window.__release = null;
			const released = new Promise(resolve => { window.__release = resolve; });
			window.fetch = async (...args) => {
				if (String(args[0]).startsWith("/api/deadletters?before=")) {
					window.__olderAsked++;
					await released;
				}
				return real(...args);
			};
			new EventSource("/api/deadletters/stream").addEventListener("deadletter", e => window.__streamed.push(JSON.parse(e.data).key));
		})()`), chromedp.Click(chromedp.CSS("#more")))
		b.await(t, `window.__olderAsked === 1`, "Older to ask for the letters before the oldest shown")
		key := deadLetters(t, r, 1)[0]
		b.await(t, fmt.Sprintf(`window.__streamed.includes(%q)`, key), "the new letter streamed")
		b.do(t, chromedp.Evaluate[chromedp.Void](`window.__release()`))
		b.await(t, fmt.Sprintf(`!document.getElementById("more").disabled && %s.length > 50 &&
			%s[0].querySelector("code.key").textContent === %q`, cards, cards, key), "Older's letters listed, the new letter first")
		if got := b.eval(t, fmt.Sprintf(`String([...%s].some(a => a.dataset.partition + "/" + a.dataset.offset === %q))`, cards, last)); got != "true" {
			t.Errorf("letter %s, the oldest shown when Older was clicked, is listed no more", last)
		}
	})

	b.noExceptions(t)
}

// deadLetters writes n records that the orchestrator's start of sagas
// cannot decode, and so dead-letters, and returns their keys in order.
func deadLetters(t *testing.T, r *running, n int) []string {
	t.Helper()
	client, _ := rawClients(t, r)
	keys := make([]string, n)
	for i := range keys {
		keys[i] = "dead-" + uuid.NewString()
		rec := &kgo.Record{Topic: contracts.TopicOrderEvents, Key: []byte(keys[i]), Value: []byte("not avro")}
		if err := client.ProduceSync(t.Context(), rec).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	return keys
}

// browser is one headless Chromium tab.
type browser struct {
	ctx        context.Context
	mu         sync.Mutex
	exceptions []string // uncaught in any page
}

func openBrowser(t *testing.T) *browser {
	t.Helper()
	path := os.Getenv("CHROMIUM")
	if path == "" {
		var err error
		if path, err = exec.LookPath("chromium"); err != nil {
			t.Fatal("no chromium on PATH and CHROMIUM unset: make test-ui installs it")
		}
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(path), chromedp.NoSandbox, chromedp.WindowSize(1280, 900))
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(alloc)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	b := &browser{ctx: ctx}
	err := chromedp.Listen(ctx, func(ev any) {
		if e, ok := ev.(*runtime.EventExceptionThrown); ok {
			b.mu.Lock()
			defer b.mu.Unlock()
			d := e.ExceptionDetails
			msg := d.Text
			if d.Exception != nil {
				msg += " " + d.Exception.Description
			}
			b.exceptions = append(b.exceptions, fmt.Sprintf("%s:%d: %s", d.URL, d.LineNumber+1, msg))
		}
	})
	if err != nil {
		t.Fatalf("start chromium %s: %v", path, err)
	}
	return b
}

func (b *browser) do(t *testing.T, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		t.Fatal(err)
	}
}

// open loads url and marks the page, so that stillLoaded can tell it was
// not loaded again.
func (b *browser) open(t *testing.T, url string) {
	t.Helper()
	b.do(t, chromedp.Navigate(url), chromedp.Evaluate[chromedp.Void](`window.__loadedOnce = true`))
}

func (b *browser) stillLoaded(t *testing.T) {
	t.Helper()
	if got := b.eval(t, `String(window.__loadedOnce)`); got != "true" {
		t.Errorf("the page was loaded again (its mark is %s): it should update in place", got)
	}
}

// signIn types the admin token and the operator's name, ops-José, into
// the page's header, unless this tab has them already.
func (b *browser) signIn(t *testing.T) {
	t.Helper()
	if b.eval(t, `document.querySelector('#admin input[type="password"]').value`) == "" {
		b.do(t, chromedp.SendKeys(chromedp.CSS(`#admin input[type="password"]`), adminToken),
			chromedp.SendKeys(chromedp.CSS(`#admin input[aria-label="operator"]`), "ops-José"))
	}
}

func (b *browser) eval(t *testing.T, expr string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[string](expr))
	if err != nil {
		t.Fatalf("%s: %v", expr, err)
	}
	return v
}

// await polls the page until predicate is true, failing with what it
// waited for.
func (b *browser) await(t *testing.T, predicate, what string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 60*time.Second)
	defer cancel()
	if _, err := chromedp.Run(ctx, chromedp.Poll[chromedp.Void](predicate, chromedp.WithPollingInterval(50*time.Millisecond),
		chromedp.WithPollingTimeout(45*time.Second))); err != nil {
		status := b.eval(t, `document.getElementById("status") ? document.getElementById("status").textContent : ""`)
		t.Fatalf("waiting for %s: %v (the page's status line: %q)", what, err, status)
	}
}

// screenshot saves the whole page as name under the test's artifacts
// (go test -artifacts keeps them; scripts/test-ui.sh passes it).
func (b *browser) screenshot(t *testing.T, name string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.ArtifactDir(), name)
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", path)
}

func (b *browser) noExceptions(t *testing.T) {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, e := range b.exceptions {
		t.Errorf("uncaught in a page: %s", e)
	}
}

// checkRowsAsTheAPI fails unless the list's rows are the sagas that
// GET /api/sagas answers to query, in its order.
func checkRowsAsTheAPI(t *testing.T, b *browser, r *running, query string) {
	t.Helper()
	var page struct {
		Sagas []struct {
			SagaID string `json:"sagaId"`
		} `json:"sagas"`
	}
	r.getJSON(t, r.sagas+"/api/sagas"+query, &page)
	var want []string
	for _, s := range page.Sagas {
		want = append(want, s.SagaID)
	}
	if got := b.eval(t, `[...document.querySelectorAll("#sagas tbody tr")].map(tr => tr.dataset.sagaId).join(" ")`); got != strings.Join(want, " ") {
		t.Errorf("rows: got %s,\nwant the API's answer to %q, in its order: %s", got, query, strings.Join(want, " "))
	}
}

// front is a proxy to the orchestrator that passes everything on until
// refusing is set, then answers each new saga stream, and each read of the
// saga list, 503; refusingReads refuses the reads of the saga and
// dead-letter lists, of the saga types and of a saga (GET /sagas/{id})
// alone. drop ends the
// streams passed on.
type front struct {
	*httptest.Server
	refusing      atomic.Bool
	refusingReads atomic.Bool
	refused       atomic.Int32 // streams refused
	refusedLists  atomic.Int32 // reads refused
	mu            sync.Mutex
	streams       []context.CancelFunc // ends the streams passed on
}

func refusingFront(t *testing.T, r *running) *front {
	t.Helper()
	target, err := url.Parse(r.sagas)
	if err != nil {
		t.Fatal(err)
	}
	proxy := httputil.NewSingleHostReverseProxy(target)
	f := &front{}
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		path := req.URL.Path
		if req.Method == http.MethodGet && strings.HasPrefix(path, "/sagas/") {
			path = "/sagas/{id}"
		}
		switch path {
		case "/api/sagas/stream", "/api/sagas", "/api/deadletters", "/sagas/{id}", "/api/sagatypes":
			read := path != "/api/sagas/stream"
			if f.refusing.Load() && path == "/api/sagas" || f.refusing.Load() && !read || f.refusingReads.Load() && read {
				if read {
					f.refusedLists.Add(1)
				} else {
					f.refused.Add(1)
				}
				w.Header().Set("Content-Type", "application/json")
				w.Header().Set("Retry-After", "1")
				w.WriteHeader(http.StatusServiceUnavailable)
				_, _ = w.Write([]byte(`{"error":"not ready"}`))
				return
			}
		}
		if req.URL.Path == "/api/sagas/stream" {
			ctx, cancel := context.WithCancel(req.Context())
			f.mu.Lock()
			f.streams = append(f.streams, cancel)
			f.mu.Unlock()
			req = req.WithContext(ctx)
		}
		proxy.ServeHTTP(w, req)
	}))
	t.Cleanup(func() { f.refusing.Store(true); f.drop(); f.CloseClientConnections(); f.Close() })
	return f
}

func (f *front) drop() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, cancel := range f.streams {
		cancel()
	}
	f.streams = nil
}

// awaitRefused waits for the browser to have been refused what refused
// counts, at least times (once if not given).
func awaitRefused(t *testing.T, refused *atomic.Int32, times ...int32) {
	t.Helper()
	want := append(times, 1)[0]
	eventually(t, 30*time.Second, func() error {
		if n := refused.Load(); n < want {
			return fmt.Errorf("the browser was refused %d times, want %d", n, want)
		}
		return nil
	})
}

// aSagaWaitingOnPayment places an order whose saga then waits on
// authorize_payment: the payment service reads no command until release is
// called or the test ends.
func aSagaWaitingOnPayment(t *testing.T, r *running, customer string, total int64) (id string, release func()) {
	t.Helper()
	if r.stack.Cluster() == nil {
		t.Skip("holding the payment service's commands back needs the embedded broker")
	}
	held := r.stack.Cluster().Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Fetch}, Topic: contracts.TopicPaymentCommands,
		Err: kerr.NotLeaderForPartition, Count: -1})
	t.Cleanup(held.Remove)
	id = r.createOrder(t, customer, total)
	awaitStep(t, r, id, "authorize_payment")
	return id, held.Remove
}

// awaitStep polls GET /sagas/{id} until the saga waits on step.
func awaitStep(t *testing.T, r *running, id, step string) {
	t.Helper()
	eventually(t, 30*time.Second, func() error {
		var s sagaView
		status, body, err := r.try(http.MethodGet, r.sagas+"/sagas/"+id, nil)
		if err == nil && status == http.StatusOK {
			err = json.Unmarshal(body, &s)
		}
		if err != nil || s.Step != step {
			return fmt.Errorf("saga %s: %d %s %v, want it waiting on %s", id, status, body, err, step)
		}
		return nil
	})
}

// awaitIndexed polls the console's list until it shows saga id in state:
// the console's index has it, and its stream has announced it.
func awaitIndexed(t *testing.T, r *running, id, state string) {
	t.Helper()
	eventually(t, 30*time.Second, func() error {
		var page struct {
			Sagas []struct {
				State string `json:"state"`
			} `json:"sagas"`
		}
		r.getJSON(t, r.sagas+"/api/sagas?q="+id, &page)
		if len(page.Sagas) != 1 || page.Sagas[0].State != state {
			return fmt.Errorf("saga %s in the console's index: %+v, want %s", id, page.Sagas, state)
		}
		return nil
	})
}
