// The console's shell: sign-in, navigation and a router over the URL's fragment
// (#/payments/pay_…), so every view has a link of its own and the api serves only files.
import { api, session, signIn, signOut, whenUnauthorized, merchantKeyPrefix } from "./api.js";
import { h, errorText } from "./ui.js";
import { paymentsView, paymentView } from "./payments.js";
import { endpointsView } from "./endpoints.js";
import { deadLettersView, deadLetterView } from "./deadletters.js";
import { operatorView } from "./operator.js";

const merchantNav = [["#/payments", "Payments"], ["#/endpoints", "Endpoints"], ["#/dead-letters", "Dead letters"]];
const operatorNav = [["#/operator", "Overview"]];

const routes = [
  { re: /^#\/payments$/, role: "merchant", view: paymentsView },
  { re: /^#\/payments\/([^/?]+)$/, role: "merchant", view: paymentView },
  { re: /^#\/endpoints$/, role: "merchant", view: endpointsView },
  { re: /^#\/dead-letters$/, role: "merchant", view: deadLettersView },
  { re: /^#\/dead-letters\/([^/?]+)$/, role: "merchant", view: deadLetterView },
  { re: /^#\/operator$/, role: "operator", view: operatorView },
];

let stopView = null;
let notice = "";

function renderChrome(sess) {
  const nav = document.getElementById("nav");
  const who = document.getElementById("who");
  const out = document.getElementById("signout");
  const path = location.hash.split("?")[0];
  const items = !sess ? [] : sess.role === "operator" ? operatorNav : merchantNav;
  nav.replaceChildren(...items.map(([href, label]) =>
    h("a", { href, "aria-current": path === href || path.startsWith(href + "/") ? "page" : null }, label)));
  who.textContent = !sess ? "" : sess.role === "operator" ? "Signed in as operator" :
    "Signed in with key " + sess.token.slice(0, merchantKeyPrefix.length + 4) + "…";
  out.hidden = !sess;
}

function route() {
  if (stopView) {
    stopView();
    stopView = null;
  }
  const sess = session();
  const main = document.getElementById("main");
  main.replaceChildren();
  if (!sess) {
    if (location.hash !== "" && location.hash !== "#/signin") {
      history.replaceState(null, "", "#/signin");
    }
    renderChrome(null);
    signInView(main);
    return;
  }
  const home = sess.role === "operator" ? "#/operator" : "#/payments";
  const path = location.hash.split("?")[0];
  const r = routes.find((x) => x.re.test(path));
  if (!r || r.role !== sess.role) {
    location.replace(home);
    return;
  }
  renderChrome(sess);
  const params = new URLSearchParams(location.hash.includes("?") ? location.hash.slice(location.hash.indexOf("?") + 1) : "");
  const args = path.match(r.re).slice(1).map(decodeURIComponent);
  stopView = r.view(main, ...args, params) || null;
  const h1 = main.querySelector("h1");
  if (h1) {
    h1.tabIndex = -1;
    h1.focus({ preventScroll: true });
  }
}

function signInView(main) {
  const input = h("input", { id: "token", name: "token", type: "password", autocomplete: "off", required: true, size: 40,
    "aria-describedby": "token-help" });
  const err = h("p", { id: "signin-error", class: notice === "Signed out." ? "muted" : "error", role: "alert" }, notice);
  notice = "";
  const form = h("form", { id: "signin", class: "panel" },
    h("div", null, h("label", { for: "token" }, "API key or admin token"), input),
    h("p", { id: "token-help", class: "muted" },
      `A merchant signs in with an API key (${merchantKeyPrefix}…), an operator with the ADMIN_TOKEN. ` +
      "It is kept in this tab's session storage only and sent to this API as a bearer token."),
    h("div", { class: "actions" }, h("button", { type: "submit" }, "Sign in")),
    err);
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const token = input.value.trim();
    err.textContent = "";
    const role = token.startsWith(merchantKeyPrefix) ? "merchant" : "operator";
    try {
      // The same API decides: a merchant key must list its endpoints, an admin token must
      // read the operator overview.
      await api("GET", role === "merchant" ? "/v1/endpoints" : "/v1/operator/overview", undefined, token);
    } catch (e2) {
      err.textContent = e2.status === 401 ? "That key or token was refused (401)." : errorText(e2);
      return;
    }
    signIn(token, role);
    go(role === "operator" ? "#/operator" : "#/payments");
  });
  main.append(h("h1", null, "Sign in"), form);
  input.focus();
}

// go shows the view at hash, also when it is the current one.
function go(hash) {
  if (location.hash === hash) route();
  else location.hash = hash;
}

whenUnauthorized(() => {
  signOut();
  notice = "The API refused the key or token (401): sign in again.";
  route();
});

document.getElementById("signout").addEventListener("click", () => {
  signOut();
  notice = "Signed out.";
  go("#/signin");
});

window.addEventListener("hashchange", route);
route();
