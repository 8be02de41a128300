// One saga: its summary, its history as a timeline, its diagram with the
// current step highlighted and its data, updated live from the saga stream.
import { el, getJSON, retrier, follow, show, time, ended, badge, adminEnabled, act } from "./common.js";

const id = decodeURIComponent(location.pathname.split("/").pop());
const actions = document.getElementById("actions");
const abort = document.getElementById("abort");
let disarm; // the timer that disarms abort
let actionsEnabled = false;
let saga = null;

function summary(s) {
  const rows = [
    ["Type", `${s.type}, version ${s.version}`],
    ["Step", s.step || "none: ended"],
    ["Waiting for", s.waitingFor ? `a reply to ${s.waitingFor}` : ""],
    ["Attempt", s.attempt ? String(s.attempt) : ""],
    ["Deadline", s.deadline ? [time(s.deadline), s.overdue ? el("span", { class: "mark overdue" }, "overdue") : ""] : ""],
    ["Failure reason", s.failureReason],
    ["Started", time(s.startedAt)],
    ["Updated", time(s.updatedAt)],
  ];
  document.getElementById("summary").replaceChildren(...rows.filter(([, v]) => v && v.length !== 0)
    .flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, v)]));
}

function timeline(history) {
  document.getElementById("timeline").replaceChildren(...(history || []).map((h) =>
    el("li", { data: { event: h.event, state: h.state } },
      el("time", { datetime: h.at }, time(h.at, true)),
      el("strong", {}, h.event), " ", badge(h.state),
      h.step ? el("span", { class: "step" }, ` step ${h.step}`) : "",
      h.attempt ? el("span", { class: "attempt" }, `, attempt ${h.attempt}`) : "",
      h.by ? el("span", { class: "by" }, `, by ${h.by}`) : "")));
}

function render(s) {
  saga = s;
  document.title = `${s.sagaId} · ${s.type} · kafkasaga console`;
  const state = document.getElementById("state");
  state.replaceWith(Object.assign(badge(s.state), { id: "state" }));
  summary(s);
  timeline(s.history);
  document.getElementById("data").textContent = JSON.stringify(s.data, null, 2);
  const step = ended(s.state) ? s.state : s.step;
  const img = document.getElementById("diagram");
  const q = new URLSearchParams({ version: String(s.version) });
  if (step) q.set("step", step);
  const src = `/ui/diagrams/${encodeURIComponent(s.type)}.svg?${q}`;
  if (img.getAttribute("src") !== src) img.src = src;
  img.alt = `The ${s.type} saga, ${step || "no step"} highlighted`;
  actions.hidden = !actionsEnabled || ended(s.state);
  abort.hidden = s.state === "COMPENSATING"; // refused: it is undoing its steps already
}

let loading = null;
let reloadAfter = false;
const again = retrier();
// load reads the saga and shows it. One request at a time: a change
// announced during one is read by another right after it, so the last
// change is never missed. A read that failed in a way that may pass (a
// 503 while its partition moves) is made again: an ended saga has no
// change to announce.
async function load() {
  if (loading) { reloadAfter = true; return loading; }
  loading = (async () => {
    do {
      reloadAfter = false;
      try { render(await getJSON(`/sagas/${encodeURIComponent(id)}`)); show(""); again.ok(); }
      catch (err) { show(err.message, true); again.after(err, load); }
    } while (reloadAfter);
    loading = null;
  })();
  return loading;
}

// run acts on the saga as the page shows it: a saga that has moved on
// since (a reply came, a timeout re-sent its command) is left as it is,
// and read again.
async function run(path, what) {
  const out = document.getElementById("action-result");
  out.textContent = `${what}…`;
  out.className = "status";
  // One action at a time: a second click would act on a saga moved on.
  const buttons = [document.getElementById("retry"), abort];
  for (const b of buttons) b.disabled = true;
  try {
    render(await act(path, { step: saga.step, attempt: saga.attempt }));
    out.textContent = `${what}: done`;
  } catch (err) {
    out.textContent = `${what}: ${err.message}`;
    out.className = "status error";
    load();
  } finally {
    for (const b of buttons) b.disabled = false;
  }
}

document.getElementById("saga-id").textContent = id;
document.getElementById("retry").addEventListener("click", () => run(`/sagas/${encodeURIComponent(id)}/retry`, "Retry"));
// Abort asks to be clicked twice: it cannot be taken back.
abort.addEventListener("click", () => {
  if (abort.dataset.armed) {
    delete abort.dataset.armed;
    abort.textContent = "Abort: compensate and reject";
    run(`/sagas/${encodeURIComponent(id)}/abort`, "Abort");
    return;
  }
  abort.dataset.armed = "1";
  abort.textContent = "Click again to abort";
  clearTimeout(disarm); // an earlier arming's would disarm this one early
  disarm = setTimeout(() => { delete abort.dataset.armed; abort.textContent = "Abort: compensate and reject"; }, 5000);
});

actionsEnabled = await adminEnabled();
// A reconnected stream may have missed changes: read the saga again.
await follow("/api/sagas/stream", "saga", (s) => { if (s.sagaId === id) load(); }, load);
await load();
