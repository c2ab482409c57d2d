// API tokens: an application's key to the JSON API, read or read-write, one book
// or all, and optionally limited to some properties (a token that may see only
// names and emails never sees a phone number, from any address of the API).
//
// The property boxes are the scopes the server offers (GET /api/scopes); a
// token limited to some of them can only read, so ticking one picks "Read
// only" and disables "Read and write". The token is shown once.

import { request, get } from "./api.js";
import { el, $, toast } from "./ui.js";
import { bookSelect, grantItem, message, shownOnce } from "./grant-parts.js";

function part() { return $("#tokens-part"); }

function addForm(books, scopes, onAdded) {
  const error = el("p", { id: "token-add-error", class: "error", role: "alert" });
  const button = el("button", { type: "submit", class: "primary" }, "Create token");
  const write = el("input", { type: "radio", name: "scope", value: "write" });
  const read = el("input", { type: "radio", name: "scope", value: "read", defaultChecked: true });
  const boxes = scopes.filter((s) => s.name !== "name").map((s) => el("label", { class: "choice" },
    el("input", { type: "checkbox", name: "properties", value: s.name }),
    ` ${s.name} `, el("span", { class: "muted" }, `(${s.properties.join(", ")})`)));
  const form = el("form", { id: "token-add-form", class: "card-box", "aria-labelledby": "token-add-heading" },
    el("h4", { id: "token-add-heading" }, "Create an API token"),
    el("label", { for: "token-name" }, "Name of the application"),
    el("input", { id: "token-name", name: "name", required: true, maxlength: "100", autocomplete: "off",
      placeholder: "Mail merge script" }),
    el("fieldset", {}, el("legend", {}, "Access"),
      el("label", { class: "choice" }, read, " Read only"),
      el("label", { class: "choice" }, write, " Read and write")),
    el("label", { for: "token-book" }, "Address book"),
    bookSelect("token-book", books),
    el("fieldset", { id: "token-properties", "aria-describedby": "token-properties-help" },
      el("legend", {}, "Properties it may see"),
      el("p", { id: "token-properties-help", class: "muted small" },
        "Tick none for every property. With some ticked it sees only those (and the name), and can only read."),
      el("div", { class: "scope-boxes" }, boxes)),
    button, error);
  const ticked = () => [...form.querySelectorAll("input[name=properties]:checked")].map((i) => i.value);
  form.addEventListener("change", () => {
    const limited = ticked().length > 0;
    if (limited) read.checked = true;
    write.disabled = limited;
  });
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const data = new FormData(form);
    const body = { name: String(data.get("name")).trim(), scope: String(data.get("scope")) };
    if (data.get("book")) body.books = [String(data.get("book"))];
    if (ticked().length) body.properties = ticked();
    error.textContent = "";
    button.disabled = true;
    try {
      const { data: made } = await request("POST", "tokens", { body });
      form.reset();
      write.disabled = false;
      await onAdded(made);
    } catch (e) {
      error.textContent = message(e);
      form.elements.name.focus();
    } finally {
      button.disabled = false;
    }
  });
  return form;
}

function tokenBox(made, done) {
  return shownOnce({ id: "new-token", title: `The token for ${made.name}`, label: "Token",
    secret: made.secret, onDone: done,
    extra: [el("p", {}, "The application sends it in every request to the API as ",
      el("code", {}, "Authorization: Bearer …"), ".")] });
}

/** Empty the view (sign-out): no token shown once stays in the DOM. */
export function forgetTokens() {
  if (part()) part().replaceChildren();
}

/** Fill #tokens-part: the tokens, then the form; `made` is a token just created (shown once). */
export async function showTokens(made = null) {
  const status = el("p", { id: "tokens-status", class: "status", role: "status", tabindex: "-1" }, "Loading…");
  const list = el("ul", { id: "token-list", class: "grant-list", "aria-labelledby": "tokens-heading" });
  let books = [];
  let scopes = [];
  try {
    [{ data: { books } }, { data: { items: scopes } }] = await Promise.all([get(""), get("scopes")]);
  } catch (e) {
    status.textContent = message(e);
  }
  const reload = () => showTokens();
  const box = made ? tokenBox(made, async () => { await reload(); $("#token-name").focus(); }) : null;
  part().replaceChildren(
    el("h3", { id: "tokens-heading" }, "API tokens"),
    el("p", {}, "For an application that uses the JSON API on your behalf: it never learns your password, "
      + "and may be limited to reading, to one book, or to some properties."),
    box, status, list, addForm(books, scopes, (token) => showTokens(token)));
  if (box) box.querySelector("h4").focus();
  try {
    const { data } = await get("tokens");
    status.textContent = data.items.length
      ? `${data.items.length} token${data.items.length === 1 ? "" : "s"}.` : "No API tokens yet.";
    list.replaceChildren(...data.items.map((grant) => grantItem(grant, {
      what: "token", url: "tokens", onRevoked: reload, afterRevoke: () => $("#tokens-status"),
      consequence: "The application's next request is refused.",
    })));
  } catch (e) {
    status.textContent = message(e);
    toast(message(e));
  }
}
