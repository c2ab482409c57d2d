// The page's only way to the server: Cardfile's JSON API at ./api/, with HTTP Basic.
//
// Credentials live in this module's memory only: never in sessionStorage or
// localStorage, where any script that ever ran on the origin could read them
// back, so a reload asks to sign in again. They are sent only in the
// Authorization header, never in a URL. Requests use credentials: "omit" so
// that a 401 is handed to the page (which says "wrong password") instead of
// the browser's own login box.

let token = null;
let userName = "";

export class ApiError extends Error {
  constructor(status, detail, body) {
    super(detail || `The server answered ${status}.`);
    this.status = status;
    this.body = body;
  }
}

function basic(user, password) {
  const bytes = new TextEncoder().encode(`${user}:${password}`);
  let text = "";
  for (const b of bytes) text += String.fromCharCode(b);
  return "Basic " + btoa(text);
}

export function setCredentials(user, password) {
  token = basic(user, password);
  userName = user;
}

/**
 * Sign in: the password is sent once, to make a short-lived session token
 * (POST api/session); from then on only that token is sent, and the password
 * is not kept at all. Throws ApiError (401 for a wrong password).
 */
export async function signIn(user, password) {
  setCredentials(user, password);
  try {
    const { data } = await request("POST", "session", { quiet401: true });
    token = "Bearer " + data.secret;
  } catch (e) {
    forget();
    throw e;
  }
}

export function forget() {
  if (token && token.startsWith("Bearer ")) {
    // End the session on the server too (best effort: it expires anyway).
    fetch(`${ROOT}/session`, { method: "DELETE", credentials: "omit",
      headers: { Authorization: token } }).catch(() => {});
  }
  token = null;
  userName = "";
}

export function signedIn() { return token !== null; }

/** The API's root, relative to the page (works behind a reverse proxy prefix). */
export const ROOT = new URL("api/", document.baseURI).pathname.replace(/\/$/, "");

let onUnauthorized = () => {};
export function whenUnauthorized(callback) { onUnauthorized = callback; }

/**
 * One request. `body` is JSON-encoded unless it is a string, Blob or ArrayBuffer.
 * Returns {status, headers, data} where data is parsed JSON, text or a Blob (`as`).
 */
export async function request(method, url, { body, headers = {}, as = "json", quiet401 = false } = {}) {
  const init = { method, headers: { ...headers }, credentials: "omit", cache: "no-store" };
  if (token) init.headers.Authorization = token;
  if (body !== undefined) {
    if (typeof body === "string" || body instanceof Blob || body instanceof ArrayBuffer) {
      init.body = body;
    } else {
      init.body = JSON.stringify(body);
      if (!init.headers["Content-Type"]) init.headers["Content-Type"] = "application/json";
    }
  }
  if (as === "json" && !init.headers.Accept) init.headers.Accept = "application/json";
  let response;
  try {
    response = await fetch(url.startsWith("/") ? url : `${ROOT}/${url}`, init);
  } catch (e) {
    throw new ApiError(0, "The server cannot be reached. Is cardfile serve running?");
  }
  const type = response.headers.get("Content-Type") || "";
  if (!response.ok && response.status !== 304) {
    let detail = "";
    let parsed = null;
    try {
      if (type.includes("json")) {
        parsed = await response.json();
        detail = parsed.detail || parsed.title || "";
      } else {
        detail = (await response.text()).trim();
      }
    } catch (e) { /* keep the status */ }
    if (response.status === 401 && !quiet401) onUnauthorized(detail);
    throw new ApiError(response.status, detail, parsed);
  }
  let data = null;
  if (response.status !== 204 && response.status !== 304) {
    if (as === "blob") data = await response.blob();
    else if (as === "text" || !type.includes("json")) data = await response.text();
    else data = await response.json();
  }
  return { status: response.status, headers: response.headers, data };
}

export const get = (url, options) => request("GET", url, options);
export const user = () => userName;
