// Dead letters: the list (live), one letter with its event, replay of one letter, and replay
// of an endpoint's events since a time.
import { api, all } from "./api.js";
import { h, statusBadge, timeEl, table, button, poll, toast, errorText, localInput, fromLocalInput } from "./ui.js";

function replayOne(dl, after) {
  return button("Replay", async () => {
    const r = await api("POST", "/v1/dead-letters/" + encodeURIComponent(dl.id) + "/replay");
    toast(`Dead letter ${dl.id} replayed (replay ${r.replay_count}).`);
    if (after) await after();
  }, { disabled: !dl.replayable, "aria-label": "Replay dead letter " + dl.id, class: "replay" });
}

function replayEndpointForm(endpoints) {
  const sel = h("select", { id: "rp-endpoint", required: true },
    endpoints.map((e) => h("option", { value: e.id }, `${e.url} (${e.id})${e.enabled ? "" : " — disabled"}`)));
  const since = h("input", { id: "rp-since", type: "datetime-local", required: true, value: localInput(new Date(Date.now() - 3600e3)) });
  const result = h("p", { id: "rp-result", role: "status" });
  const f = h("form", { class: "panel", "aria-labelledby": "rp-h" },
    h("h2", { id: "rp-h" }, "Replay an endpoint"),
    h("p", { class: "muted" }, "Sends the endpoint every event it subscribes to since the time, again, with the original webhook-id."),
    h("div", { class: "form-row" },
      h("div", null, h("label", { for: "rp-endpoint" }, "Endpoint"), sel),
      h("div", null, h("label", { for: "rp-since" }, "Since"), since),
      h("div", null, h("button", { type: "submit" }, "Replay events"))),
    result);
  f.addEventListener("submit", async (e) => {
    e.preventDefault();
    const d = fromLocalInput(since.value);
    if (!d) {
      result.textContent = "Enter a time.";
      return;
    }
    try {
      const r = await api("POST", "/v1/endpoints/" + encodeURIComponent(sel.value) + "/replay", { since: d.toISOString() });
      result.textContent = `Replayed ${r.replayed} events to ${r.endpoint_id}` + (r.duplicates ? `, ${r.duplicates} already replayed` : "") +
        (r.has_more ? `; more remain from ${r.next_since}` : ".");
    } catch (err) {
      result.textContent = errorText(err);
    }
  });
  return f;
}

export function deadLettersView(main) {
  const list = h("div", { id: "dead-letters", "aria-live": "polite" }, h("p", { class: "muted" }, "Loading…"));
  const replay = h("div");
  main.append(h("h1", null, "Dead letters"),
    h("p", { class: "muted" }, "Deliveries that exhausted their retries or were refused for good. Updated every 2 seconds."),
    list, replay);
  api("GET", "/v1/endpoints").then((p) => replay.replaceChildren(p.data.length ? replayEndpointForm(p.data) : ""),
    (err) => replay.replaceChildren(h("p", { class: "error" }, errorText(err))));

  let last = "";
  const load = async () => {
    const { data, more } = await all("/v1/dead-letters", 100, 5);
    const key = JSON.stringify(data);
    if (key === last) return;
    last = key;
    if (data.length === 0) {
      list.replaceChildren(h("p", null, "No dead letters."));
      return;
    }
    list.replaceChildren(table("Dead letters", [
      { label: "Dead-lettered", cell: (d) => timeEl(d.created_at) },
      { label: "Letter", cell: (d) => h("a", { href: "#/dead-letters/" + encodeURIComponent(d.id), class: "mono" }, d.id) },
      { label: "Event", cell: (d) => [h("code", null, d.event_type || "?"), d.payment_id ? [" ", h("a", { href: "#/payments/" + encodeURIComponent(d.payment_id), class: "mono" }, d.payment_id)] : null] },
      { label: "Endpoint", cell: (d) => h("span", { class: "mono" }, d.endpoint_id) },
      { label: "Reason", cell: (d) => [statusBadge("dead", d.reason), d.last_error ? h("div", { class: "muted" }, d.last_error) : null] },
      { label: "Deliveries", num: true, cell: (d) => String(d.deliveries) },
      { label: "Replays", num: true, cell: (d) => String(d.replay_count) },
      { label: "Action", cell: (d) => replayOne(d, load) },
    ], data), more ? h("p", { class: "muted" }, "Only the newest 500 are shown.") : "");
  };
  return poll(load, 2000, (err) => list.replaceChildren(h("p", { class: "error" }, errorText(err))));
}

export function deadLetterView(main, id) {
  const body = h("div", { id: "dead-letter" }, h("p", { class: "muted" }, "Loading…"));
  main.append(h("p", null, h("a", { href: "#/dead-letters" }, "← All dead letters")),
    h("h1", null, "Dead letter ", h("span", { class: "mono" }, id)), body);
  const load = async () => {
    const d = await api("GET", "/v1/dead-letters/" + encodeURIComponent(id));
    body.replaceChildren(
      h("div", { class: "panel" }, h("dl", { class: "facts" },
        h("dt", null, "Reason"), h("dd", null, statusBadge("dead", d.reason)),
        h("dt", null, "Endpoint"), h("dd", { class: "mono" }, d.endpoint_id),
        h("dt", null, "Event"), h("dd", null, h("code", null, d.event_type || "?"), " ", h("span", { class: "mono" }, d.event_id || "")),
        h("dt", null, "Payment"), h("dd", null, d.payment_id ? h("a", { href: "#/payments/" + encodeURIComponent(d.payment_id), class: "mono" }, d.payment_id) : "—"),
        h("dt", null, "Deliveries tried"), h("dd", null, String(d.deliveries)),
        h("dt", null, "Last error"), h("dd", null, d.last_error || "—"),
        h("dt", null, "Dead-lettered"), h("dd", null, timeEl(d.created_at)),
        h("dt", null, "Replays"), h("dd", { id: "replay-count" }, String(d.replay_count), d.last_replayed_at ? [", last ", timeEl(d.last_replayed_at)] : null),
        h("dt", null, "Original"), h("dd", { class: "mono" }, `${d.origin_stream} #${d.origin_seq}`),
        h("dt", null, "Replayable"), h("dd", null, d.replayable ? "yes" : "no: the original message is gone"))),
      h("div", { class: "actions" }, replayOne(d, load)),
      h("h2", null, "Event"),
      d.event ? h("pre", { class: "excerpt full" }, JSON.stringify(d.event, null, 2)) : h("p", { class: "muted" }, "The body is not JSON."));
  };
  load().catch((err) => body.replaceChildren(h("p", { class: "error" }, errorText(err))));
  return null;
}
