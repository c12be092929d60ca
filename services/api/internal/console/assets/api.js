// The REST API, called on this origin with the signed-in bearer token. No cookies: the token
// lives in sessionStorage, so a page of another origin cannot make the browser call as us.

const tokenKey = "ctrip.console.token";
const roleKey = "ctrip.console.role";

export const merchantKeyPrefix = "sk_live_";

export function session() {
  const token = sessionStorage.getItem(tokenKey);
  const role = sessionStorage.getItem(roleKey);
  return token && role ? { token, role } : null;
}

export function signIn(token, role) {
  sessionStorage.setItem(tokenKey, token);
  sessionStorage.setItem(roleKey, role);
}

export function signOut() {
  sessionStorage.removeItem(tokenKey);
  sessionStorage.removeItem(roleKey);
}

export class APIError extends Error {
  constructor(status, code, message, field) {
    super(message);
    this.status = status;
    this.code = code;
    this.field = field;
  }
}

// onUnauthorized is called when the API refuses the token (revoked key, wrong token).
let onUnauthorized = () => {};
export function whenUnauthorized(f) { onUnauthorized = f; }

export async function api(method, path, body, token) {
  const t = token || (session() || {}).token;
  const headers = { Accept: "application/json" };
  if (t) headers.Authorization = "Bearer " + t;
  const init = { method, headers, credentials: "omit", cache: "no-store", redirect: "error" };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const res = await fetch(path, init);
  if (res.status === 204) return null;
  let data = null;
  const text = await res.text();
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      throw new APIError(res.status, "bad_response", `the API answered ${res.status} with a body that is not JSON`);
    }
  }
  if (!res.ok) {
    const e = (data && data.error) || {};
    if (res.status === 401 && !token) onUnauthorized();
    throw new APIError(res.status, e.code || "http_" + res.status, e.message || res.statusText, e.field);
  }
  return data;
}

// all follows a list's cursors, at most pages pages of limit rows.
export async function all(path, limit, pages) {
  const out = [];
  let cursor = null;
  for (let i = 0; i < pages; i++) {
    const q = new URLSearchParams({ limit: String(limit) });
    if (cursor) q.set("cursor", cursor);
    const sep = path.includes("?") ? "&" : "?";
    const page = await api("GET", path + sep + q.toString());
    out.push(...page.data);
    if (!page.has_more) return { data: out, more: false };
    cursor = page.next_cursor;
  }
  return { data: out, more: true };
}
