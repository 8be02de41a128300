// What every page of the console shares. Everything shown is built with
// createElement and textContent, never parsed as markup: saga data and
// dead-letter payloads are user input.

// el builds an element: props sets its class, data-* and other attributes;
// children are elements or strings (made text nodes).
export function el(tag, props = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") e.className = v;
    else if (k === "data") Object.entries(v).forEach(([dk, dv]) => { e.dataset[dk] = dv; });
    else e.setAttribute(k, v);
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

// getJSON fetches path and decodes its JSON, throwing the API's error,
// with the answer's status.
export async function getJSON(path) {
  const res = await fetch(path, { headers: { Accept: "application/json" } });
  const body = await res.json().catch(() => null);
  if (!res.ok) throw Object.assign(new Error((body && body.error) || `${res.status} ${res.statusText}`), { status: res.status });
  return body;
}

// retrier reads again what failed in a way that may pass (a 503 while a
// partition moves, the network), after a second and up to every ten;
// not what a 4xx refused, which the same request would get again.
export function retrier() {
  let wait = 1000;
  return {
    ok() { wait = 1000; },
    // after calls again later, if err may pass, and says whether it will.
    after(err, again) {
      if (err.status >= 400 && err.status < 500) return false;
      setTimeout(again, wait);
      wait = Math.min(2 * wait, 10000);
      return true;
    },
  };
}

// follow calls onData with each event's decoded data from the server-sent
// events at path, and shows in #live whether the stream is connected. It
// reconnects, and then calls onReconnect, if given: what happened while
// it was away sent no event. The browser reconnects by itself only to a
// dropped stream; one whose reconnection is refused (a 503 while the
// orchestrator restarts) it closes for good, and a new one is opened,
// every second and up to every ten while it is refused.
//
// It returns a promise settled once the stream is open (or has failed,
// or after 5 s): a page reads what it shows after that, since a change
// made between its read and the opening of its stream would reach it
// neither way. A stream that opens after the page read calls
// onReconnect, as a reconnected one does.
export function follow(path, event, onData, onReconnect) {
  const live = document.getElementById("live");
  let src, missed = false, opened = false, left = false, settle;
  const again = retrier();
  const settled = new Promise((ok) => { settle = ok; });
  setTimeout(() => { if (!opened) missed = true; settle(); }, 5000);
  const connect = () => {
    if (left) return;
    src = new EventSource(path);
    src.onopen = () => {
      opened = true;
      settle();
      live.textContent = "live"; live.className = "live on";
      again.ok();
      if (missed && onReconnect) onReconnect();
      missed = false;
    };
    src.onerror = () => {
      settle();
      live.textContent = "reconnecting"; live.className = "live off";
      missed = true;
      if (src.readyState === EventSource.CLOSED) again.after({}, connect); // an EventSource tells no status
    };
    src.addEventListener(event, (e) => {
      try { onData(JSON.parse(e.data)); } catch (err) { console.error(event, err); }
    });
  };
  connect();
  // A page left open in the back-forward cache would keep its stream, and
  // a browser opens six connections to a host at most: after a few pages
  // nothing else would load. Close it on leaving; a page shown again from
  // that cache is read anew.
  addEventListener("pagehide", () => { left = true; src.close(); });
  addEventListener("pageshow", (e) => { if (e.persisted) location.reload(); });
  return settled;
}

// show writes a message (or nothing) into #status.
export function show(msg, isError = false) {
  const s = document.getElementById("status");
  s.textContent = msg || "";
  s.className = isError ? "status error" : "status";
}

// time shows iso in the browser's time zone, to the millisecond if precise.
export function time(iso, precise = false) {
  if (!iso) return "";
  const d = new Date(iso);
  if (isNaN(d)) return String(iso);
  return d.toLocaleString(undefined, { year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit",
    minute: "2-digit", second: "2-digit", hour12: false, ...(precise ? { fractionalSecondDigits: 3 } : {}) });
}

// ago says how long ago iso was, roughly.
export function ago(iso) {
  const ms = Date.now() - Date.parse(iso);
  if (isNaN(ms)) return "";
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s}s ago`;
  if (s < 3600) return `${Math.floor(s / 60)}m ago`;
  if (s < 86400) return `${Math.floor(s / 3600)}h ago`;
  return `${Math.floor(s / 86400)}d ago`;
}

export const ended = (state) => state === "COMPLETED" || state === "REJECTED";

export function badge(state) {
  return el("span", { class: `badge ${String(state).toLowerCase()}`, data: { state } }, state);
}

// Operator actions: shown only when the orchestrator has ADMIN_TOKEN set.
// The token is typed in once and kept for this tab only.
const tokenKey = "kafkasaga.adminToken", operatorKey = "kafkasaga.operator";

export async function adminEnabled() {
  let enabled = false;
  try { enabled = (await getJSON("/api/admin")).actionsEnabled === true; } catch { /* no actions */ }
  if (!enabled) return false;
  const token = el("input", { type: "password", placeholder: "admin token", size: "14", "aria-label": "admin token" });
  token.value = sessionStorage.getItem(tokenKey) || "";
  token.addEventListener("input", () => sessionStorage.setItem(tokenKey, token.value));
  const who = el("input", { placeholder: "your name", size: "10", maxlength: "64", "aria-label": "operator" });
  who.value = sessionStorage.getItem(operatorKey) || "";
  who.addEventListener("input", () => sessionStorage.setItem(operatorKey, who.value));
  document.getElementById("admin").replaceChildren(token, who);
  return true;
}

// act posts an operator action, with body as JSON if given, and returns
// its decoded answer, throwing the API's error.
export async function act(path, body) {
  const headers = { Authorization: `Bearer ${sessionStorage.getItem(tokenKey) || ""}` };
  const who = sessionStorage.getItem(operatorKey);
  // Percent-encoded (RFC 8187): a header holds Latin-1 only.
  if (who) headers["X-Operator"] = `UTF-8''${encodeURIComponent(who)}`;
  const init = { method: "POST", headers };
  if (body !== undefined) { headers["Content-Type"] = "application/json"; init.body = JSON.stringify(body); }
  const res = await fetch(path, init);
  const answer = await res.json().catch(() => null);
  if (!res.ok) throw new Error((answer && answer.error) || `${res.status} ${res.statusText}`);
  return answer;
}
