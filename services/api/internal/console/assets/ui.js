// DOM helpers. Text from the API (URLs, response bodies, error messages) only ever goes into
// text nodes and attributes, never into markup.

export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  setAttrs(el, attrs);
  append(el, children);
  return el;
}

const svgNS = "http://www.w3.org/2000/svg";

export function s(tag, attrs, ...children) {
  const el = document.createElementNS(svgNS, tag);
  setAttrs(el, attrs);
  append(el, children);
  return el;
}

function setAttrs(el, attrs) {
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2), v);
    else if (k === "class") el.setAttribute("class", v);
    else if (v === true) el.setAttribute(k, "");
    else el.setAttribute(k, String(v));
  }
}

function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

// statusBadge writes the status out; the class adds a mark and a colour on top of the word.
export function statusBadge(status, label) {
  return h("span", { class: "status status-" + status, "data-status": status }, label || status);
}

export function fmtTime(iso) {
  if (!iso) return "—";
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return String(iso);
  const p = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

export function timeEl(iso) {
  return h("time", { datetime: iso || "" }, fmtTime(iso));
}

export function fmtAge(seconds) {
  if (seconds === null || seconds === undefined) return "—";
  if (seconds < 90) return `${Math.round(seconds)} s`;
  if (seconds < 5400) return `${Math.round(seconds / 60)} min`;
  return `${(seconds / 3600).toFixed(1)} h`;
}

export function fmtMS(ms) {
  if (ms === null || ms === undefined) return "—";
  return ms < 10 ? `${ms.toFixed(1)} ms` : `${Math.round(ms)} ms`;
}

// table builds a table that stacks into labelled cards on a narrow screen. cols: [{label,
// cell(row) → node|string, num?}].
export function table(caption, cols, rows, attrs) {
  return h("table", Object.assign({ class: "stack" }, attrs || {}),
    caption ? h("caption", { class: "visually-hidden" }, caption) : null,
    h("thead", null, h("tr", null, cols.map((c) => h("th", { scope: "col", class: c.num ? "num" : null }, c.label)))),
    h("tbody", null, rows.map((r) => h("tr", rowAttrs(r),
      cols.map((c) => h("td", { "data-label": c.label, class: c.num ? "num" : null }, c.cell(r)))))));
}

function rowAttrs(r) {
  return r && r.id ? { "data-id": r.id } : null;
}

let toastTimer = null;

// toast announces a result to sighted and screen-reader users alike.
export function toast(msg) {
  const el = document.getElementById("toast");
  el.textContent = msg;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { el.textContent = ""; }, 6000);
}

// errorText is a failed call as a sentence.
export function errorText(err) {
  if (err && err.code) return `${err.message} (${err.code}${err.field ? ", field " + err.field : ""})`;
  return String((err && err.message) || err);
}

// button calls action on click, disabled while it runs, and reports its error.
export function button(label, action, attrs) {
  const b = h("button", Object.assign({ type: "button" }, attrs || {}), label);
  b.addEventListener("click", async () => {
    b.disabled = true;
    try {
      await action();
    } catch (err) {
      toast(errorText(err));
    } finally {
      b.disabled = false;
    }
  });
  return b;
}

// poll runs fn now and then every ms after each run ends, until the returned stop is called.
export function poll(fn, ms, onError) {
  let stopped = false;
  let timer = null;
  const tick = async () => {
    if (stopped) return;
    try {
      await fn();
    } catch (err) {
      if (onError) onError(err);
    }
    if (!stopped) timer = setTimeout(tick, ms);
  };
  tick();
  return () => { stopped = true; clearTimeout(timer); };
}

// localInput is a datetime-local value for a Date; fromLocalInput reads one back (null if empty).
export function localInput(d) {
  const p = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}`;
}

export function fromLocalInput(v) {
  if (!v) return null;
  const d = new Date(v);
  return Number.isNaN(d.getTime()) ? null : d;
}
