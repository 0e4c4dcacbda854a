// The API client: the session's tokens live in this module's memory only (never in
// localStorage or a cookie), the access token is refreshed silently before it expires,
// and every error is the API's envelope with its request id.

const BASE = "/api/v1";

export class ApiError extends Error {
  constructor(status, envelope, requestId) {
    super(envelope.message || `HTTP ${status}`);
    this.status = status;
    this.code = envelope.error_code || `HTTP_${status}`;
    this.details = envelope.details ?? null;
    this.requestId = envelope.request_id || requestId || "";
  }
}

let session = null; // {access, refresh, user, timer}
let refreshing = null; // the refresh in flight, shared by concurrent callers
const listeners = new Set();

export function onSessionChange(listener) {
  listeners.add(listener);
}

function changed() {
  for (const listener of listeners) listener(session ? session.user : null);
}

export function currentUser() {
  return session ? session.user : null;
}

export function accessToken() {
  return session ? session.access : null;
}

function adopt(tokens) {
  if (session && session.timer) clearTimeout(session.timer);
  const user = session ? session.user : null;
  session = { access: tokens.access_token, refresh: tokens.refresh_token, user, timer: null };
  // Refresh at 80% of the lifetime: the token never expires under an open page.
  const delay = Math.max(5, tokens.expires_in * 0.8) * 1000;
  session.timer = setTimeout(() => refresh().catch(() => endSession()), delay);
}

async function decode(response) {
  const requestId = response.headers.get("X-Request-ID") || "";
  if (response.status === 204) return null;
  const type = response.headers.get("Content-Type") || "";
  const body = type.includes("json") ? await response.json() : await response.text();
  if (!response.ok) {
    const envelope = typeof body === "object" && body ? body : { message: String(body) };
    throw new ApiError(response.status, envelope, requestId);
  }
  return body;
}

export async function login(username, password) {
  const form = new URLSearchParams({ username, password });
  const response = await fetch(`${BASE}/auth/token`, { method: "POST", body: form });
  adopt(await decode(response));
  session.user = await request("GET", "/users/me");
  changed();
  return session.user;
}

export function refresh() {
  if (!session) return Promise.reject(new Error("not signed in"));
  if (!refreshing) {
    const token = session.refresh;
    refreshing = fetch(`${BASE}/auth/refresh`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ refresh_token: token }),
    })
      .then(decode)
      .then((tokens) => {
        if (session && session.refresh === token) adopt(tokens);
      })
      .finally(() => {
        refreshing = null;
      });
  }
  return refreshing;
}

function endSession() {
  if (session && session.timer) clearTimeout(session.timer);
  session = null;
  changed();
}

export async function logout() {
  const token = session ? session.refresh : null;
  endSession();
  if (token) {
    await fetch(`${BASE}/auth/logout`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ refresh_token: token }),
    }).catch(() => undefined);
  }
}

function url(path, query) {
  const target = new URL(BASE + path, window.location.origin);
  for (const [key, value] of Object.entries(query || {})) {
    if (value === undefined || value === null || value === "") continue;
    if (Array.isArray(value)) value.forEach((v) => target.searchParams.append(key, v));
    else target.searchParams.set(key, String(value));
  }
  return target.pathname + target.search;
}

// One call: `request("GET", "/stocks", {query: {limit: 50}})`. A 401 after the access
// token expired is retried once after a refresh; any other refusal throws ApiError.
export async function request(method, path, options = {}) {
  const send = () => {
    const headers = { ...(options.headers || {}) };
    if (session) headers.Authorization = `Bearer ${session.access}`;
    let body;
    if (options.json !== undefined) {
      headers["Content-Type"] = "application/json";
      body = JSON.stringify(options.json);
    } else if (options.body !== undefined) {
      body = options.body;
    }
    return fetch(url(path, options.query), { method, headers, body });
  };
  let response = await send();
  if (response.status === 401 && session) {
    try {
      await refresh();
    } catch (error) {
      endSession();
      throw error;
    }
    response = await send();
  }
  return decode(response);
}

export const get = (path, query) => request("GET", path, { query });

// A fresh key per user action (POSTs that change money or positions). getRandomValues
// works outside secure contexts too (a plain-HTTP host on the LAN), randomUUID does not.
export function newIdempotencyKey() {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}
