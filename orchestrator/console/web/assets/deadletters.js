// The dead-letter topic: each message with where it came from, why it was
// set aside and its payload, newest first, new ones added live.
import { el, getJSON, retrier, follow, show, time, adminEnabled, act } from "./common.js";

const list = document.getElementById("deadletters");
const more = document.getElementById("more");
let next = "";
let actionsEnabled = false;

// readable shows an undecoded payload as text when it is printable, else
// as the base64 it came in.
function readable(raw) {
  try {
    const text = atob(raw);
    if (/^[\x20-\x7e\t\r\n]*$/.test(text)) return `as text: ${text}`;
  } catch { /* not base64: shown as it is */ }
  return `base64: ${raw}`;
}

function card(d) {
  // The dlq_* headers say what From, Handler and Error show.
  const headers = Object.entries(d.headers || {}).filter(([k]) => !k.startsWith("dlq_"));
  // A cut value is the start of its JSON, as a string.
  const payload = d.value !== null && d.value !== undefined
    ? el("pre", { class: "value" }, d.cut ? d.value : JSON.stringify(d.value, null, 2))
    : el("pre", { class: "raw" }, d.raw ? `not decoded; ${readable(d.raw)}` : "empty");
  const cut = d.cut ? el("p", { class: "hint" }, `Cut: only its start is shown, of a payload of ${d.size} bytes.`) : "";
  const clipped = d.clipped ? el("p", { class: "hint" }, "Clipped: the key or the headers are too large to show whole.") : "";
  const replay = el("button", { type: "button", class: "replay" }, "Replay to its topic");
  const result = el("span", { class: "status" });
  replay.addEventListener("click", async () => {
    // Once: each click writes the message to its topic again.
    replay.disabled = true;
    result.textContent = "replaying…";
    result.className = "status";
    try {
      const at = await act(`/deadletters/${d.partition}/${d.offset}/replay`);
      result.textContent = `replayed to ${at.topic} [${at.partition}] @ ${at.offset}`;
    } catch (err) {
      result.textContent = err.message;
      result.className = "status error";
      replay.disabled = false;
    }
  });
  return el("article", { class: "panel deadletter", data: { partition: String(d.partition), offset: String(d.offset), timestamp: d.timestamp, cursor: d.cursor } },
    el("h2", {}, d.record || "unknown record", " ", el("small", {}, `${time(d.timestamp)}, dead letter ${d.partition}/${d.offset}`)),
    el("dl", { class: "summary" },
      el("dt", {}, "From"), el("dd", {}, `${d.sourceTopic} [${d.sourcePartition}] @ ${d.sourceOffset}`),
      el("dt", {}, "Handler"), el("dd", {}, d.handler || ""),
      el("dt", {}, "Error"), el("dd", { class: "error" }, d.error || ""),
      el("dt", {}, "Key"), el("dd", {}, el("code", { class: "key" }, d.key ?? ""))),
    headers.length ? el("table", { class: "headers" },
      el("tbody", {}, headers.map(([k, v]) => el("tr", {}, el("th", {}, k), el("td", {}, el("code", {}, v)))))) : "",
    clipped,
    cut,
    payload,
    actionsEnabled ? el("p", {}, replay, " ", result) : "");
}

// held are the dead letters the stream sent while the list was read (a
// first page, or Older's), or since a first read failed: the answer may
// be older than they are, so they are added once one is shown. The newest
// keep of them do: the list has them too. Added while Older read, one let
// the oldest letter shown go, and Older's answer began after it: that
// letter was listed no more.
let held = null;

// read is how many letters the page showed once its last answer came: it
// keeps as many, at least keep, letting the oldest go as the stream
// brings new ones (Older lists them again). Left open, it grew by every
// letter, each up to some hundred KB.
let read = 0;
const keep = 50; // the API's default limit

// newer orders letters (or their cards' data) newest first, as the API
// does: by time, then partition, then offset. The stream brings them in
// the order each partition's were read.
const newer = (a, b) => Date.parse(b.timestamp) - Date.parse(a.timestamp) || b.partition - a.partition || b.offset - a.offset;

// add shows d, a dead letter from the stream, where it belongs, unless it
// is shown or older than every letter shown while Older lists more.
function add(d) {
  if (held) {
    held.push(d);
    if (held.length > 1000) held.shift();
    return;
  }
  const seen = list.querySelector(`article[data-partition="${CSS.escape(String(d.partition))}"][data-offset="${CSS.escape(String(d.offset))}"]`);
  const after = seen ? null : [...list.children].find((a) => newer(d, a.dataset) < 0);
  if (after) after.before(card(d));
  else if (!seen && !next) list.append(card(d));
  while (list.children.length > Math.max(read, keep)) {
    list.lastElementChild.remove();
    next = list.lastElementChild.dataset.cursor;
    more.hidden = false;
  }
  show("");
}

// loads counts the loads begun: only the latest one's answer is shown, so
// that a second click on "Older" appends nothing twice.
let loads = 0;
const again = retrier();

// load reads a page of letters. A first page that failed keeps the
// stream's letters held, and its error shown, until one is read: added
// alone, they looked like every letter there is.
async function load(append = false) {
  const seq = ++loads;
  more.disabled = true;
  held ??= [];
  let failed = false;
  try {
    const page = await getJSON(`/api/deadletters${append ? `?before=${encodeURIComponent(next)}` : ""}`);
    if (seq !== loads) return;
    again.ok();
    const cards = page.deadLetters.map(card);
    if (append) list.append(...cards); else list.replaceChildren(...cards);
    read = list.children.length;
    next = page.next || "";
    more.hidden = !next;
    show(list.children.length ? "" : "No dead letters.");
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
        const stream = held || [];
        held = null;
        for (const d of stream) add(d);
      }
    }
  }
}

more.addEventListener("click", () => load(true));
actionsEnabled = await adminEnabled();
const following = follow("/api/deadletters/stream", "deadletter", add, () => load());
// Until the first read, what the stream says is held for it.
held = [];
await following;
await load();
