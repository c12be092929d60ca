// The operator's overview (admin token): consumers, streams and the DLQ, delivery success and
// latency per endpoint over the last hour, each chain's head and the scanner's lag.
import { api } from "./api.js";
import { h, statusBadge, timeEl, fmtAge, fmtMS, table, poll, errorText } from "./ui.js";
import { outcomesChart, latencyChart } from "./chart.js";

function pct(rate) {
  return (rate * 100).toFixed(1).replace(/\.0$/, "") + " %";
}

function endpointCard(e) {
  return h("article", { class: "panel endpoint-stats", "data-id": e.endpoint_id },
    h("h3", { class: "mono" }, e.url || e.endpoint_id),
    h("p", null, h("span", { class: "mono" }, e.endpoint_id), e.merchant_id ? h("span", { class: "muted" }, " · merchant " + e.merchant_id) : " · default endpoint"),
    h("p", { class: "success-rate" }, `${pct(e.success_rate)} delivered (${e.delivered} of ${e.attempts} attempts), ${fmtMS(e.latency_avg_ms)} average`),
    h("figure", null, outcomesChart(e.buckets, "outcomes-" + e.endpoint_id),
      h("figcaption", { class: "muted" }, "Attempts per 5 minutes: solid delivered, hatched failed")),
    h("figure", null, latencyChart(e.buckets, "latency-" + e.endpoint_id),
      h("figcaption", { class: "muted" }, "Average latency per 5 minutes")));
}

export function operatorView(main) {
  const when = h("p", { class: "muted", id: "live" }, "Loading…");
  const body = h("div", { id: "operator" });
  main.append(h("h1", null, "Operator overview"), when, body);
  return poll(async () => {
    const o = await api("GET", "/v1/operator/overview");
    when.textContent = "Updated every 5 seconds, last at " + new Date(o.generated_at).toLocaleTimeString();
    body.replaceChildren(
      h("h2", null, "Durable consumers"),
      table("Durable consumers", [
        { label: "Stream", cell: (c) => c.stream },
        { label: "Consumer", cell: (c) => h("span", { class: "mono" }, c.name) },
        { label: "Pending", num: true, cell: (c) => String(c.num_pending) },
        { label: "Ack pending", num: true, cell: (c) => String(c.num_ack_pending) },
        { label: "Redelivered", num: true, cell: (c) => String(c.num_redelivered) },
        { label: "Waiting pulls", num: true, cell: (c) => String(c.num_waiting) },
        { label: "Last delivery", cell: (c) => timeEl(c.last_active) },
      ], o.consumers.map((c) => Object.assign({ id: c.stream + "/" + c.name }, c)), { id: "consumers" }),
      h("h2", null, "Dead-letter queue"),
      h("div", { class: "panel", id: "dlq" }, h("dl", { class: "facts" },
        h("dt", null, "Dead letters"), h("dd", { id: "dlq-depth" }, String(o.dlq.dead_letters)),
        h("dt", null, "Never replayed"), h("dd", null, String(o.dlq.never_replayed)),
        h("dt", null, "Copies on dlq.webhooks.>"), h("dd", null, String(o.dlq.dead_lettered_copies)),
        h("dt", null, "DLQ stream messages"), h("dd", null, String(o.dlq.stream_messages)))),
      h("h2", null, "Streams"),
      table("Streams", [
        { label: "Stream", cell: (x) => x.name },
        { label: "State", cell: (x) => x.exists ? statusBadge("enabled", "exists") : statusBadge("disabled", "missing") },
        { label: "Messages", num: true, cell: (x) => String(x.messages) },
        { label: "Bytes", num: true, cell: (x) => String(x.bytes) },
        { label: "Sequences", num: true, cell: (x) => `${x.first_seq}–${x.last_seq}` },
        { label: "Consumers", num: true, cell: (x) => String(x.consumers) },
      ], o.streams, { id: "streams" }),
      h("h2", null, "Chains"),
      table("Chains", [
        { label: "Chain", cell: (c) => `${c.name} (${c.chain_id})` },
        { label: "Head", num: true, cell: (c) => c.head ? String(c.head.number) : h("span", { class: "error" }, c.head_error || "unknown") },
        { label: "Head age", num: true, cell: (c) => c.head ? fmtAge(c.head.age_seconds) : "—" },
        { label: "Scanner at", num: true, cell: (c) => c.cursor ? String(c.cursor.number) : "not started" },
        { label: "Scanner lag", num: true, cell: (c) => c.scanner_lag_blocks === null ? "—" : `${c.scanner_lag_blocks} blocks` },
      ], o.chains.map((c) => Object.assign({ id: String(c.chain_id) }, c)), { id: "chains" }),
      h("h2", null, "Deliveries in the last hour"),
      o.deliveries.endpoints.length === 0 ? h("p", null, "No delivery attempts in the last hour.") :
        h("div", { class: "cards", id: "deliveries" }, o.deliveries.endpoints.map(endpointCard)));
  }, 5000, (err) => when.replaceChildren(h("span", { class: "error" }, errorText(err))));
}
