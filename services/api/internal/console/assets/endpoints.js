// Webhook endpoints: create, edit the URL and event filter, rotate the secret (shown once),
// see why one is disabled and re-enable it, send a test event, delete.
import { api } from "./api.js";
import { h, statusBadge, timeEl, button, toast, errorText } from "./ui.js";

// The event types an endpoint may subscribe to (rest.EventTypes); none ticked is every type.
export const eventTypes = ["payment.created", "payment.detected", "payment.confirmed", "payment.expired",
  "payment.reorged", "payment.swept", "payment.sweep_failed"];

function typeBoxes(prefix, chosen) {
  return h("fieldset", null, h("legend", null, "Event types (none ticked: every type)"),
    eventTypes.map((t) => {
      const id = `${prefix}-${t.replace(/\W/g, "-")}`;
      return h("label", { for: id }, h("input", { type: "checkbox", id, name: "event_types", value: t, checked: chosen.includes(t) }), t);
    }));
}

function ticked(form) {
  return [...form.querySelectorAll('input[name="event_types"]:checked')].map((i) => i.value);
}

// secretNotice shows a secret the API returns once: at creation and at rotation.
function secretNotice(what, secret) {
  return h("div", { class: "secret", role: "alert", id: "secret" },
    h("strong", null, what), h("code", null, secret),
    h("span", null, "Copy it now: it is not shown again."));
}

export function endpointsView(main) {
  const flash = h("div", { id: "flash" });
  const list = h("div", { id: "endpoints" }, h("p", { class: "muted" }, "Loading…"));

  const url = h("input", { id: "ep-url", name: "url", type: "url", required: true, size: 40, placeholder: "your server's https URL" });
  const legacy = h("input", { id: "ep-legacy", name: "legacy_signature", type: "checkbox" });
  const form = h("form", { class: "panel", id: "create-endpoint", "aria-labelledby": "create-h" },
    h("h2", { id: "create-h" }, "New endpoint"),
    h("div", { class: "form-row" }, h("div", null, h("label", { for: "ep-url" }, "URL"), url)),
    typeBoxes("new", []),
    h("label", { for: "ep-legacy" }, legacy, " Also sign with the legacy X-Webhook-Signature"),
    h("div", { class: "actions" }, h("button", { type: "submit" }, "Create endpoint")));
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    try {
      const ep = await api("POST", "/v1/endpoints", { url: url.value.trim(), event_types: ticked(form), legacy_signature: legacy.checked });
      flash.replaceChildren(secretNotice(`Endpoint ${ep.id} created. Its signing secret:`, ep.secret));
      form.reset();
      await refresh();
    } catch (err) {
      toast(errorText(err));
    }
  });

  async function refresh() {
    const page = await api("GET", "/v1/endpoints");
    list.replaceChildren(page.data.length === 0 ? h("p", null, "No endpoints yet.") : h("div", { class: "cards" }, page.data.map(card)));
  }

  function card(ep) {
    const c = h("article", { class: "panel", "data-id": ep.id, "aria-labelledby": "h-" + ep.id });
    const edit = h("div");
    const render = () => c.replaceChildren(
      h("h3", { id: "h-" + ep.id, class: "mono" }, ep.url),
      h("dl", { class: "facts" },
        h("dt", null, "Id"), h("dd", { class: "mono" }, ep.id),
        h("dt", null, "State"), h("dd", { class: "ep-state" }, ep.enabled ? statusBadge("enabled") : statusBadge("disabled"),
          !ep.enabled && ep.disabled_reason ? h("span", null, " — ", ep.disabled_reason) : null,
          !ep.enabled && ep.disabled_at ? h("span", { class: "muted" }, " since ", timeEl(ep.disabled_at)) : null),
        h("dt", null, "Events"), h("dd", null, ep.event_types.length ? ep.event_types.join(", ") : "every type"),
        h("dt", null, "Legacy signature"), h("dd", null, ep.legacy_signature ? "yes" : "no"),
        ep.previous_secret_expires_at ? [h("dt", null, "Old secret signs until"), h("dd", null, timeEl(ep.previous_secret_expires_at))] : null,
        h("dt", null, "Created"), h("dd", null, timeEl(ep.created_at))),
      h("div", { class: "actions" },
        ep.enabled ? null : button("Re-enable", async () => {
          ep = await api("PATCH", "/v1/endpoints/" + ep.id, { enabled: true });
          toast(`Endpoint ${ep.id} re-enabled.`);
          render();
        }, { "data-action": "enable" }),
        button("Edit", async () => showEdit(), { class: "secondary", "data-action": "edit" }),
        ep.enabled ? button("Send test event", async () => {
          const r = await api("POST", "/v1/endpoints/" + ep.id + "/test");
          toast(`Test event ${r.event_id} sent to ${ep.id}.`);
        }, { class: "secondary", "data-action": "test" }) : null,
        button("Rotate secret", async () => { // the old secret keeps signing for 24 hours
          const r = await api("POST", "/v1/endpoints/" + ep.id + "/rotate-secret");
          flash.replaceChildren(secretNotice(`New signing secret of ${ep.id}:`, r.secret));
          ep = r;
          render();
          flash.querySelector("code").scrollIntoView({ block: "center" });
        }, { class: "secondary", "data-action": "rotate" }),
        ep.enabled ? button("Disable", async () => {
          ep = await api("PATCH", "/v1/endpoints/" + ep.id, { enabled: false });
          toast(`Endpoint ${ep.id} disabled.`);
          render();
        }, { class: "danger", "data-action": "disable" }) : null,
        button("Delete", async () => {
          if (!confirm(`Delete the endpoint ${ep.url}? It receives nothing more.`)) return;
          await api("DELETE", "/v1/endpoints/" + ep.id);
          toast(`Endpoint ${ep.id} deleted.`);
          await refresh();
        }, { class: "danger", "data-action": "delete" })),
      edit);

    function showEdit() {
      const u = h("input", { id: "edit-url-" + ep.id, type: "url", value: ep.url, size: 40, required: true });
      const f = h("form", { class: "edit" },
        h("div", null, h("label", { for: "edit-url-" + ep.id }, "URL"), u),
        typeBoxes("edit-" + ep.id, ep.event_types),
        h("div", { class: "actions" }, h("button", { type: "submit" }, "Save"),
          h("button", { type: "button", class: "secondary", onclick: () => edit.replaceChildren() }, "Cancel")));
      f.addEventListener("submit", async (e) => {
        e.preventDefault();
        try {
          ep = await api("PATCH", "/v1/endpoints/" + ep.id, { url: u.value.trim(), event_types: ticked(f) });
          toast(`Endpoint ${ep.id} saved.`);
          edit.replaceChildren();
          render();
        } catch (err) {
          toast(errorText(err));
        }
      });
      edit.replaceChildren(f);
      u.focus();
    }
    render();
    return c;
  }

  main.append(h("h1", null, "Endpoints"), flash,
    h("div", { class: "actions" }, button("Refresh", refresh, { class: "secondary" })), list, form);
  refresh().catch((err) => list.replaceChildren(h("p", { class: "error" }, errorText(err))));
  return null;
}
