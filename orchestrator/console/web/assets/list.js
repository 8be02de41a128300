// The list of sagas: filters, newest first, updated live from the saga
// stream, and a chart of the last minutes.
import { el, getJSON, retrier, follow, show, time, ago, ended, badge, adminEnabled } from "./common.js";
import { drawChart } from "./chart.js";

const form = document.getElementById("filters");
const tbody = document.querySelector("#sagas tbody");
const more = document.getElementById("more");
const shown = new Map(); // saga id -> its summary, for the rows on the page
let next = "";
// edge is the summary next lists the sagas after: the last row read, or
// kept (keep). A saga older than every row but newer than it belongs at the
// end, where a row that moved out of the filters left a gap.
let edge = null;
// read is how many rows the page showed once its last answer came: it
// keeps as many, at least a page's worth, letting the oldest go as the
// stream brings new ones (Older lists them again). Left open, it grew by
// every saga started.
let read = 0;
const pageSize = 50; // the API's default limit
let total = 0;
// applied are the filters of the rows shown; submitted those last
// submitted (or the page's URL), which every read of a first page uses,
// a reconnection's before any answer came too: not what the form holds
// before it is.
let applied = {};
let submitted = {};
// recent are the summaries the stream sent in the last keepRecent ms, the
// latest revision of each saga, oldest first. A list answer may be older
// than they are: read while they came, or from an instance behind the
// one that streams (a fetch, 100 ms, or so). So each is placed again
// once an answer is shown.
const recent = new Map(); // saga id -> {s, at}
const keepRecent = 10000;
// holding says the list is being read: what the stream sends meanwhile is
// placed once the answer is shown. So until the first read.
let holding = true;

// filters are the form's non-empty fields, also kept in the page's URL.
function filters() {
  return Object.fromEntries([...new FormData(form)].filter(([, v]) => v !== ""));
}

// minAgeMs reads a Go duration such as 90s, 5m or 1h30m.
function minAgeMs(d) {
  let ms = 0;
  for (const [, n, unit] of String(d).matchAll(/([\d.]+)(ms|h|m|s)/g)) {
    ms += Number(n) * { ms: 1, s: 1e3, m: 6e4, h: 36e5 }[unit];
  }
  return ms;
}

// matches filters as the API does: a step whatever its direction.
function matches(s, f) {
  return (!f.type || s.type === f.type) && (!f.state || s.state === f.state) &&
    (!f.step || (s.step || "").split(":")[0] === f.step) && (!f.q || s.sagaId.startsWith(f.q)) &&
    (!f.minAge || Date.now() - Date.parse(s.startedAt) >= minAgeMs(f.minAge));
}

function overdue(s) {
  return s.overdue || (!ended(s.state) && s.deadline && Date.parse(s.deadline) < Date.now());
}

function marks(s) {
  const m = [];
  if (overdue(s)) m.push(el("span", { class: "mark overdue" }, "overdue"));
  if (s.retrying) m.push(el("span", { class: "mark retrying" }, `retrying, attempt ${s.attempt}`));
  if (s.failureReason) m.push(el("span", { class: "mark reason" }, s.failureReason));
  return m;
}

function row(s) {
  return el("tr", { data: { sagaId: s.sagaId, state: s.state } },
    el("td", {}, el("a", { href: `/ui/sagas/${encodeURIComponent(s.sagaId)}` }, s.sagaId)),
    el("td", {}, `${s.type} v${s.version}`),
    el("td", {}, badge(s.state)),
    el("td", {}, s.step || ""),
    el("td", { class: "num" }, s.attempt ? String(s.attempt) : ""),
    el("td", { title: time(s.startedAt) }, ago(s.startedAt)),
    el("td", { title: time(s.updatedAt) }, ago(s.updatedAt)),
    el("td", {}, marks(s)));
}

// age moves tr's ages and overdue mark with the clock, in place: a row
// made anew every few seconds lost the focus and selection in it, and
// cost a page of thousands of rows a second each time.
function age(tr, s) {
  for (const [i, at] of [[5, s.startedAt], [6, s.updatedAt]]) {
    const text = ago(at);
    if (tr.cells[i].textContent !== text) tr.cells[i].textContent = text;
  }
  if (overdue(s) !== (tr.cells[7].querySelector(".overdue") !== null)) tr.cells[7].replaceChildren(...marks(s));
}

// newer orders summaries newest first (by start, then id), as the API does.
const newer = (a, b) => Date.parse(b.startedAt) - Date.parse(a.startedAt) || (a.sagaId < b.sagaId ? -1 : 1);

// remember keeps s, a saga's summary from the stream, in recent, unless
// a later revision of the saga is there, and forgets those past keepRecent.
function remember(s) {
  const now = Date.now();
  const kept = recent.get(s.sagaId);
  if (!kept || kept.s.revision <= s.revision) {
    recent.delete(s.sagaId);
    recent.set(s.sagaId, { s, at: now });
  }
  for (const [id, { at }] of recent) {
    if (now - at <= keepRecent) break;
    recent.delete(id);
  }
}

// place shows s, a saga's summary, where it belongs, unless its row shows
// a later revision of the saga: revisions, unlike clocks, order a saga's
// changes as they were made, whichever instance tells of them.
function place(s) {
  const known = shown.get(s.sagaId);
  if (known && s.revision < known.revision) return;
  const old = tbody.querySelector(`tr[data-saga-id="${CSS.escape(s.sagaId)}"]`);
  if (!matches(s, applied)) {
    if (old) { old.remove(); shown.delete(s.sagaId); total = Math.max(0, total - 1); counted(); }
    return;
  }
  if (old) { old.replaceWith(row(s)); shown.set(s.sagaId, s); return; }
  // The first row it is newer than, in the order of the rows.
  const after = [...tbody.rows].find((tr) => { const o = shown.get(tr.dataset.sagaId); return o && newer(s, o) < 0; });
  // Older than the rows shown: on a later page, unless it is the saga
  // next lists the sagas after.
  if (!after && next && (!edge || (s.sagaId !== edge.sagaId && newer(s, edge) > 0))) return;
  shown.set(s.sagaId, s);
  total++;
  const tr = row(s);
  if (after) after.before(tr);
  else tbody.append(tr);
  keep();
  counted();
}

// keep lets the oldest rows go past what the answers read.
function keep() {
  while (shown.size > Math.max(read, pageSize)) {
    const last = tbody.rows[tbody.rows.length - 1];
    shown.delete(last.dataset.sagaId);
    last.remove();
    edge = shown.get(tbody.rows[tbody.rows.length - 1].dataset.sagaId);
    next = edge.cursor;
    more.hidden = false;
  }
}

function counted() {
  show(`${total} saga${total === 1 ? "" : "s"} match, ${shown.size} shown`);
}

// loads counts the loads begun: only the latest one's answer is shown, so
// that a slow answer to an earlier filter, or a second click on "Older",
// changes nothing.
let loads = 0;
const again = retrier();

// load reads a page of the list. A first page that failed keeps the
// stream's sagas held, and its error shown, until one is read: placed
// against the filters of no answer, they were shown unfiltered.
async function load(append = false) {
  const f = append ? applied : submitted;
  const q = new URLSearchParams(f);
  if (append) q.set("before", next);
  const seq = ++loads;
  more.disabled = true;
  holding = true;
  let failed = false;
  try {
    const page = await getJSON(`/api/sagas?${q}`);
    if (seq !== loads) return;
    again.ok();
    if (!append) { tbody.replaceChildren(); shown.clear(); applied = f; edge = null; }
    for (const s of page.sagas) {
      if (shown.has(s.sagaId)) continue; // placed from the stream already
      shown.set(s.sagaId, s);
      tbody.append(row(s));
    }
    read = shown.size;
    edge = page.sagas.at(-1) ?? edge;
    next = page.next || "";
    total = page.total ?? shown.size;
    more.hidden = !next;
    counted();
  } catch (err) {
    if (seq === loads) {
      show(err.message, true);
      failed = !append;
      if (failed) again.after(err, () => { if (seq === loads) load(); });
    }
  } finally {
    if (seq === loads) {
      more.disabled = false;
      if (!failed) {
        holding = false;
        for (const { s } of recent.values()) place(s);
      }
    }
  }
}

async function fillFilters() {
  const params = new URLSearchParams(location.search);
  const types = await getJSON("/api/sagatypes").catch(() => []);
  const options = (name, values) => form.elements[name].append(...values.map((v) => el("option", { value: v }, v)));
  options("type", types.map((t) => t.type));
  options("state", ["RUNNING", "COMPENSATING", "COMPLETED", "REJECTED"]);
  options("step", [...new Set(types.flatMap((t) => t.steps))]);
  // A value the page's URL names, which the types read did not bring (it
  // failed, or the type is gone), is kept: dropped, the filter was.
  for (const [k, v] of params) {
    const field = form.elements[k];
    if (!field) continue;
    if (field.tagName === "SELECT" && ![...field.options].some((o) => o.value === v)) field.append(el("option", { value: v }, v));
    field.value = v;
  }
}

async function stats() {
  try { drawChart(document.getElementById("chart"), (await getJSON("/api/stats?minutes=15")).minutes); }
  catch (err) { document.getElementById("chart").replaceChildren(el("p", { class: "status error" }, err.message)); }
}

form.addEventListener("submit", (e) => {
  e.preventDefault();
  submitted = filters();
  history.replaceState(null, "", `?${new URLSearchParams(submitted)}`);
  load();
});
more.addEventListener("click", () => load(true));

await fillFilters();
submitted = filters();
// The chart is read again a second after sagas change, and every 15 s.
let statsDue = null;
const following = follow("/api/sagas/stream", "saga", (s) => {
  remember(s);
  if (!holding) place(s);
  statsDue ??= setTimeout(() => { statsDue = null; stats(); }, 1000);
}, () => {
  // What the stream sent before it dropped is older than the answer read
  // now: placed again after it, a saga that ended in the gap showed as
  // running.
  recent.clear();
  load();
  stats();
});
await following;
await load();
adminEnabled();
stats();
setInterval(stats, 15000);
// Ages and overdue marks move with the clock.
setInterval(() => {
  if (holding) return;
  for (const tr of tbody.rows) { const s = shown.get(tr.dataset.sagaId); if (s) age(tr, s); }
}, 5000);
