// Shares: one of your books, or one category of it, shared with another user of
// this server, read-only or read and write (issue 16, /api/shares).
//
// An offer waits until the other user accepts it; then the book is among
// theirs (the page's book chooser lists it, app.js), a view of yours that
// stays current, and either of you can end it. A declined or expired offer
// shows to its sender only as "not accepted", exactly as the API says it.
//
// Names (users, books, categories) are other people's text and go in as text only.

import { request, get } from "./api.js";
import { el, $, ask, toast } from "./ui.js";
import { actThen, button, entry, message, section, when } from "./grant-parts.js";

const ACCESS_WORDS = { r: "read-only", rw: "read and write" };

/** "Family (a category of contacts)" or "the book contacts": what a share covers. */
export function shareWhat(share) {
  return share.category ? `${share.category} (a category of ${share.book})` : `the book ${share.book}`;
}

/** The name of the book a share is in its recipient's home: the last part of its path. */
const folderOf = (share) => (share.path || "").split("/").filter(Boolean).pop() || "";

/**
 * The shares accepted by this user, by the name of the book they are in their
 * home ("shared-alice-contacts-family"), so the page can tell those books apart.
 */
export async function sharedBooks() {
  try {
    const { data } = await get("shares");
    return new Map(data.items.filter((s) => s.direction === "received" && s.status === "shared" && s.path)
      .map((s) => [folderOf(s), s]));
  } catch (e) {
    return new Map();  // a login that cannot see its shares sees its own books only
  }
}

// -- offering a share ----------------------------------------------------------------------
// The latest filling of each chooser: quick changes of the book overlap, and an
// earlier book's categories arriving last must not join (or double) the list.
const choicesFilling = new WeakMap();

async function categoryChoices(select, book) {
  const filling = (choicesFilling.get(select) || 0) + 1;
  choicesFilling.set(select, filling);
  const whole = el("option", { value: "" }, "The whole book");
  select.replaceChildren(whole);
  if (!book) return;
  try {
    const { data } = await get(`${book.url}/categories`);
    if (choicesFilling.get(select) !== filling) return;  // a later call fills it
    select.append(...data.items.map((c) => el("option", { value: c.name }, c.name)));
  } catch (e) { /* the whole book can still be offered */ }
}

function offerForm(own, reload) {
  const error = el("p", { id: "share-offer-error", class: "error", role: "alert" });
  const bookSelect = el("select", { id: "share-book", name: "book", required: true },
    own.map((b) => el("option", { value: b.name }, b.name)));
  const categorySelect = el("select", { id: "share-category", name: "category" });
  const form = el("form", { id: "share-offer-form", class: "card-box", "aria-labelledby": "share-offer-heading" },
    el("h4", { id: "share-offer-heading" }, "Share a book or a category"),
    el("label", { for: "share-book" }, "Book to share"), bookSelect,
    el("label", { for: "share-category" }, "Contacts"), categorySelect,
    el("label", { for: "share-user" }, "With (a user name of this server, or name@host)"),
    el("input", { id: "share-user", name: "user", required: true, maxlength: "200", autocomplete: "off",
      autocapitalize: "none", spellcheck: "false" }),
    el("fieldset", {}, el("legend", {}, "They may"),
      el("label", { class: "choice" }, el("input", { type: "radio", name: "access", value: "r",
        defaultChecked: true }), " Read only"),
      el("label", { class: "choice" }, el("input", { type: "radio", name: "access", value: "rw" }),
        " Read and change (their changes land in your book)")),
    el("button", { type: "submit", class: "primary", id: "share-offer-button" }, "Offer to share"), error);
  const bookByName = (name) => own.find((b) => b.name === name);
  bookSelect.addEventListener("change", () => categoryChoices(categorySelect, bookByName(bookSelect.value)));
  categoryChoices(categorySelect, bookByName(bookSelect.value));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const data = new FormData(form);
    const body = { user: String(data.get("user")).trim(), book: String(data.get("book")),
      access: String(data.get("access")) };
    if (data.get("category")) body.category = String(data.get("category"));
    error.textContent = "";
    try {
      const { data: made } = await request("POST", "shares", { body });
      form.elements.user.value = "";
      toast(`Offered ${shareWhat(made)} to ${made.friend}; it is shared once they accept.`);
      await reload();
      $("#share-user").focus();
    } catch (e) {
      error.textContent = message(e);
      form.elements.user.focus();
    }
  });
  return form;
}

// -- the lists: offered to you, offered by you, shared now -------------------------------------
function endButton(share, reload) {
  const end = button("End share", async () => {
    const mine = share.direction === "sent";
    const ok = await ask({
      title: mine ? `Stop sharing ${shareWhat(share)} with ${share.friend}?`
        : `Stop receiving ${shareWhat(share)} from ${share.friend}?`,
      text: mine ? `${share.friend} no longer sees it, from their next request on; your contacts stay as they are.`
        : `It leaves your books; ${share.friend}'s contacts stay as they are.`,
      ok: "End share", danger: true });
    if (!ok) { end.focus(); return; }
    await actThen("DELETE", `shares/${encodeURIComponent(share.id)}`, "The share has ended.", reload,
      "#shares-now-heading");
  }, true);
  return end;
}

async function showShareLists(reload) {
  const box = $("#share-lists");
  let items;
  try {
    ({ data: { items } } = await get("shares"));
  } catch (e) {
    box.replaceChildren(el("p", { class: "error" }, message(e)));
    return;
  }
  const url = (s, tail = "") => `shares/${encodeURIComponent(s.id)}${tail}`;
  const access = (s) => ACCESS_WORDS[s.access] || s.access;
  const until = (s) => (s.expires ? ` (until ${when(s.expires)})` : "");
  const offered = items.filter((s) => s.direction === "received" && s.status === "invited you");
  const sent = items.filter((s) => s.direction === "sent" && s.status !== "shared");
  const now = items.filter((s) => s.status === "shared");
  box.replaceChildren(
    section("shares-offered", "Shares offered to you", "None waiting.", offered.map((s) => entry(s,
      ` offers you ${shareWhat(s)}, ${access(s)}${until(s)}`,
      button("Accept", () => actThen("POST", url(s, "/accept"),
        `${shareWhat(s)} from ${s.friend} is among your address books now.`, reload, "#shares-now-heading")),
      button("Decline", () => actThen("POST", url(s, "/decline"),
        `Declined; ${s.friend} sees only “not accepted”.`, reload, "#shares-offered-heading"))))),
    section("shares-sent", "Shares you offered", "None open.", sent.map((s) => entry(s,
      `: ${shareWhat(s)}, ${access(s)}: ${s.status === "pending" ? `waiting${until(s)}` : "not accepted"}`,
      button(s.status === "pending" ? "Withdraw" : "Remove", () => actThen("DELETE", url(s),
        `The offer to ${s.friend} is gone.`, reload, "#shares-sent-heading"))))),
    section("shares-now", "Shared now", "Nothing is shared yet.", now.map((s) => entry(s,
      s.direction === "sent" ? ` sees ${shareWhat(s)} of yours, ${access(s)}`
        : ` shares ${shareWhat(s)} with you, ${access(s)}`,
      endButton(s, reload)))));
}

/** Empty the view (sign-out): nobody's shares stay in the DOM. */
export function forgetShares() {
  if ($("#shares-part")) $("#shares-part").replaceChildren();
}

/**
 * Fill #shares-part: the offer form (your own books only) and the lists.
 * `onBooksChanged` runs after an answer or an end, since the page's books may have changed.
 */
export async function showShares(onBooksChanged = async () => {}) {
  let books = [];
  let shared = new Map();
  try {
    [{ data: { books } }, shared] = await Promise.all([get(""), sharedBooks()]);
  } catch (e) { /* the lists say what is wrong */ }
  const own = books.filter((b) => !shared.has(b.name));
  const reload = async () => {
    await showShareLists(reload);
    await onBooksChanged();
  };
  $("#shares-part").replaceChildren(
    el("h3", { id: "shares-part-heading" }, "Shared address books"),
    el("p", {}, "Share one of your books, or one category of it, with another user of this server: once "
      + "they accept, it is among their address books (on the web page and their devices) and stays current. "
      + "Either of you can end it."),
    offerForm(own, reload), el("div", { id: "share-lists" }));
  await showShareLists(reload);
}
