// Payments: the list with its filters, and one payment's timeline, live while it is open.
import { api, all } from "./api.js";
import { amountText } from "./amount.js";
import { h, statusBadge, timeEl, fmtMS, table, poll, errorText, fromLocalInput } from "./ui.js";

const statuses = ["pending", "detected", "confirmed", "swept", "expired"];

// The list asks the API for a status; token and time are filtered here over the pages read,
// newest first, stopping at the first payment older than "from".
const wanted = 50;
const maxPages = 20;

async function loadPayments(f) {
  const from = fromLocalInput(f.from);
  const to = fromLocalInput(f.to);
  const out = [];
  let cursor = null;
  for (let i = 0; i < maxPages; i++) {
    const q = new URLSearchParams({ limit: "100" });
    if (f.status) q.set("status", f.status);
    if (cursor) q.set("cursor", cursor);
    const page = await api("GET", "/v1/payments?" + q.toString());
    for (const p of page.data) {
      const at = new Date(p.created_at);
      if (from && at < from) return { payments: out, more: false };
      if (to && at > to) continue;
      if (f.token && p.token !== f.token) continue;
      out.push(p);
      if (out.length >= wanted) return { payments: out, more: true };
    }
    if (!page.has_more) return { payments: out, more: false };
    cursor = page.next_cursor;
  }
  return { payments: out, more: true };
}

export function paymentsView(main, params) {
  const f = { status: params.get("status") || "", token: params.get("token") || "", from: params.get("from") || "", to: params.get("to") || "" };
  const status = h("select", { id: "f-status", name: "status" },
    h("option", { value: "" }, "any"), statuses.map((s) => h("option", { value: s, selected: s === f.status }, s)));
  const token = h("input", { id: "f-token", name: "token", value: f.token, size: 8, placeholder: "ETH, USDC…" });
  const from = h("input", { id: "f-from", name: "from", type: "datetime-local", value: f.from });
  const to = h("input", { id: "f-to", name: "to", type: "datetime-local", value: f.to });
  const form = h("form", { class: "panel", "aria-label": "Filter payments" },
    h("div", { class: "form-row" },
      h("div", null, h("label", { for: "f-status" }, "Status"), status),
      h("div", null, h("label", { for: "f-token" }, "Token"), token),
      h("div", null, h("label", { for: "f-from" }, "Created from"), from),
      h("div", null, h("label", { for: "f-to" }, "Created until"), to),
      h("div", null, h("button", { type: "submit" }, "Filter"), " ",
        h("a", { class: "button secondary", href: "#/payments" }, "Clear"))));
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    const q = new URLSearchParams();
    if (status.value) q.set("status", status.value);
    if (token.value.trim()) q.set("token", token.value.trim().toUpperCase());
    if (from.value) q.set("from", from.value);
    if (to.value) q.set("to", to.value);
    location.hash = "#/payments" + (q.toString() ? "?" + q.toString() : "");
  });
  const list = h("div", { id: "payments", "aria-live": "polite", "aria-busy": "true" }, h("p", { class: "muted" }, "Loading…"));
  main.append(h("h1", null, "Payments"), form, list);

  let last = "";
  return poll(async () => {
    const { payments, more } = await loadPayments(f);
    const key = JSON.stringify(payments);
    if (key === last) return;
    last = key;
    list.setAttribute("aria-busy", "false");
    if (payments.length === 0) {
      list.replaceChildren(h("p", null, "No payments match."));
      return;
    }
    list.replaceChildren(
      table("Payments", [
        { label: "Created", cell: (p) => timeEl(p.created_at) },
        { label: "Payment", cell: (p) => h("a", { href: "#/payments/" + encodeURIComponent(p.id), class: "mono" }, p.id) },
        { label: "Status", cell: (p) => statusBadge(p.status) },
        { label: "Amount", num: true, cell: (p) => amountText(p.amount_base_units, p.decimals, p.token) },
        { label: "Received", num: true, cell: (p) => amountText(p.amount_received_base_units, p.decimals, p.token) },
        { label: "Chain", cell: (p) => p.chain || String(p.chain_id) },
      ], payments),
      more ? h("p", { class: "muted" }, `Showing the newest ${payments.length} matches; narrow the filter to see older ones.`) : "");
  }, 3000, (err) => list.replaceChildren(h("p", { class: "error" }, errorText(err))));
}

// timeline merges the payment's status changes, its events and every delivery attempt, oldest
// first (at the same instant: status change, then event, then attempt).
function timeline(evs, attempts) {
  const items = [];
  for (const c of evs.status_history) {
    items.push({ at: c.at, rank: 0, node: () => h("li", { "data-kind": "status" },
      h("span", { class: "kind" }, "Status"), c.from ? statusBadge(c.from) : null, c.from ? " → " : null, statusBadge(c.to),
      c.reason ? h("span", { class: "muted" }, " — " + c.reason) : null, timeEl(c.at)) });
  }
  for (const e of evs.data) {
    const deliveries = e.deliveries.map((d) => h("li", null,
      h("span", { class: "mono" }, d.endpoint_id), ": ",
      d.delivered ? statusBadge("delivered") : statusBadge(d.attempts > 0 ? "retrying" : "pending", d.attempts > 0 ? "not delivered yet" : "pending"),
      ` after ${d.attempts} attempt${d.attempts === 1 ? "" : "s"}`,
      d.last_status_code ? `, last HTTP ${d.last_status_code}` : "", d.last_error ? `, last error: ${d.last_error}` : ""));
    items.push({ at: e.timestamp, rank: 1, node: () => h("li", { "data-kind": "event", "data-event-id": e.id },
      h("span", { class: "kind" }, "Event"), h("code", null, e.type), " ", h("span", { class: "muted mono" }, e.id),
      h("div", { class: "muted" }, e.published_at ? "published" : "not published yet"),
      deliveries.length ? h("ul", null, deliveries) : h("div", { class: "muted" }, "no delivery to your endpoints yet"),
      timeEl(e.timestamp)) });
  }
  for (const a of attempts) {
    items.push({ at: a.attempted_at, rank: 2, node: () => h("li", { "data-kind": "attempt", "data-delivered": String(a.delivered), "data-event-id": a.event_id, "data-endpoint-id": a.endpoint_id },
      h("span", { class: "kind" }, `Delivery attempt ${a.attempt}`), h("code", null, a.event_type), " to ",
      h("span", { class: "mono" }, a.endpoint_id), ": ",
      statusBadge(a.delivered ? "delivered" : "failed"),
      " ", a.status_code ? `HTTP ${a.status_code}` : "no response", " · ", fmtMS(a.latency_ms),
      a.error ? h("div", { class: "error" }, a.error) : null,
      a.response_body ? h("div", null, h("span", { class: "muted" }, "Response excerpt:"),
        h("pre", { class: "excerpt" }, a.response_body.length > 600 ? a.response_body.slice(0, 600) + "…" : a.response_body)) : null,
      timeEl(a.attempted_at)) });
  }
  items.sort((x, y) => (new Date(x.at) - new Date(y.at)) || (x.rank - y.rank));
  return items;
}

export function paymentView(main, id) {
  const heading = h("h1", null, "Payment ", h("span", { class: "mono" }, id));
  const live = h("p", { class: "muted", id: "live" }, "Loading…");
  const body = h("div", { id: "payment" });
  main.append(h("p", null, h("a", { href: "#/payments" }, "← All payments")), heading, live, body);

  let last = "";
  return poll(async () => {
    const [p, evs, atts] = await Promise.all([
      api("GET", "/v1/payments/" + encodeURIComponent(id)),
      api("GET", "/v1/payments/" + encodeURIComponent(id) + "/events?limit=100"),
      all("/v1/payments/" + encodeURIComponent(id) + "/deliveries", 100, 10),
    ]);
    live.textContent = "Live: updated every second, last at " + new Date().toLocaleTimeString();
    const key = JSON.stringify([p, evs, atts.data]);
    if (key === last) return;
    last = key;
    const amt = (v) => amountText(v, p.decimals, p.token);
    const items = timeline(evs, atts.data);
    body.replaceChildren(
      h("div", { class: "panel" },
        h("dl", { class: "facts" },
          h("dt", null, "Status"), h("dd", { id: "payment-status" }, statusBadge(p.status)),
          h("dt", null, "Amount"), h("dd", null, amt(p.amount_base_units)),
          h("dt", null, "Received"), h("dd", null, amt(p.amount_received_base_units)),
          h("dt", null, "Confirmed"), h("dd", null, amt(p.amount_confirmed_base_units)),
          h("dt", null, "Swept"), h("dd", null, amt(p.amount_swept_base_units)),
          h("dt", null, "Chain"), h("dd", null, `${p.chain || ""} (${p.chain_id}), ${p.confirmations_required} confirmations`),
          h("dt", null, "Deposit address"), h("dd", { class: "mono" }, p.address),
          h("dt", null, "Expires"), h("dd", null, timeEl(p.expires_at)),
          h("dt", null, "Created"), h("dd", null, timeEl(p.created_at)),
          h("dt", null, "Metadata"), h("dd", { class: "mono" }, JSON.stringify(p.metadata)))),
      h("h2", null, "Transfers"),
      p.transfers.length === 0 ? h("p", { class: "muted" }, "None seen yet.") :
        table("Transfers", [
          { label: "Transaction", cell: (t) => h("span", { class: "mono" }, t.tx_hash) },
          { label: "Block", num: true, cell: (t) => String(t.block_number) },
          { label: "Value", num: true, cell: (t) => amt(t.value_base_units) },
          { label: "Status", cell: (t) => statusBadge(t.status) },
          { label: "Detected", cell: (t) => timeEl(t.detected_at) },
        ], p.transfers),
      h("h2", null, "Timeline"),
      h("p", { class: "muted" }, `${evs.status_history.length} status changes, ${evs.data.length} events, ${atts.data.length} delivery attempts` +
        (evs.has_more || atts.more ? " (the oldest are shown; more exist)" : "")),
      h("ol", { class: "timeline", id: "timeline" }, items.map((i) => i.node())));
  }, 1000, (err) => { live.replaceChildren(h("span", { class: "error" }, errorText(err))); });
}
