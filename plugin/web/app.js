// Cardfile's contacts page: sign-in, the address book, categories and the other pages.
//
// Everything goes through the JSON API (api.js). The page is routed by the URL
// fragment (#/contacts, #/contacts/ID, #/duplicates, #/transfer, #/device);
// the search, category and order are in it too (#/contacts?q=ada&category=Work
// &sort=family), so Back, a reload and a bookmark keep them, and nothing secret
// is ever in it. An open edit form is guarded (drafts.js): leaving it asks.

import * as api from "./api.js";
import { el, $, ask, toast, displayName, forgetPhotos } from "./ui.js";
import { ContactList } from "./list.js";
import { renderView, writePhoto, deleteWithUndo, shrink } from "./contact.js";
import { renderForm } from "./form.js";
import { renderClash } from "./conflict.js";
import * as drafts from "./drafts.js";
import { setUpSelection } from "./selection.js";
import { showDuplicates, setUpTransfer, showDevice, setUpCopyButtons } from "./pages.js";
import { historyPanel, showTrash, setUpTrashPage, showAlerts } from "./history.js";
import { showSources, forgetSources } from "./sources.js";
import { showDevices, forgetDevices } from "./devices.js";
import { showTokens, forgetTokens } from "./tokens.js";
import { showFriends, forgetFriends } from "./friends.js";
import { showShares, forgetShares, sharedBooks, shareWhat } from "./shares.js";

const state = {
  book: null,  // the book the contacts page shows: one of yours, or one shared with you
  home: null,  // your own book the other pages work on (the last of yours chosen)
  books: [],  // GET /api's books; a shared one has .shared (its share, from /api/shares)
  wantedBook: null,  // the name chosen in the book chooser
  categories: [],
  category: null,
  list: null,
  contact: null,
  editing: false,
  focusContact: false,
  refreshExport: () => {},
  updateSelection: () => {},
};

const message = (e) => (e instanceof api.ApiError ? e.message : String(e));

// -- the URL: page, contact, search, category, order ---------------------------------------
function listQuery() {
  const params = new URLSearchParams();
  const query = state.list ? state.list.query : { q: "", category: null, sort: "name" };
  if (query.q) params.set("q", query.q);
  if (query.category) params.set("category", query.category);
  if (query.sort && query.sort !== "name") params.set("sort", query.sort);
  const text = params.toString();
  return text ? `?${text}` : "";
}

function contactsHash(id) {
  return `#/contacts${id ? `/${encodeURIComponent(id)}` : ""}${listQuery()}`;
}

function parseHash() {
  const hash = location.hash || "#/contacts";
  const [path, search = ""] = hash.split("?");
  const [, page = "contacts", id = ""] = /^#\/([a-z]+)\/?(.*)$/.exec(path) || [];
  return { page, id: id ? decodeURIComponent(id) : "", params: new URLSearchParams(search), hasQuery: hash.includes("?") };
}

/** The address bar follows the list without adding history entries. */
function writeUrl() {
  const { page, id } = parseHash();
  if (page !== "contacts") return;
  const wanted = contactsHash(id);
  if (location.hash !== wanted) history.replaceState(null, "", wanted);
  state.lastHash = location.hash;
}

// -- sign-in ----------------------------------------------------------------------------
async function signIn(event) {
  event.preventDefault();
  const error = $("#signin-error");
  const button = $("#signin-button");
  error.textContent = "";
  button.disabled = true;
  button.textContent = "Signing in…";
  try {
    await api.signIn($("#signin-user").value.trim(), $("#signin-password").value);
    await start();
  } catch (e) {
    api.forget();
    error.textContent = e.status === 401 ? "The user name or password is wrong." : message(e);
    $("#signin-password").select();
  } finally {
    button.disabled = false;
    button.textContent = "Sign in";
  }
}

// -- books: yours, and the ones shared with you (read-only ones cannot be changed here) ---------
/** GET /api's books, each shared one marked with its share; the chooser lists them all. */
async function loadBooks() {
  // One after the other: a session token just made is not yet known to the login throttle
  // (dav/login_throttle.py), and two first requests at once may find the address blocked.
  const { data } = await api.get("", { quiet401: true });
  const shared = await sharedBooks();
  state.books = data.books.map((b) => ({ ...b, shared: shared.get(b.name) || null }));
  const own = state.books.filter((b) => !b.shared);
  state.home = own.find((b) => b.name === (state.home && state.home.name))
    || own.find((b) => b.name === "contacts") || own[0] || null;
  const chooser = $("#book-choice");
  chooser.replaceChildren(...state.books.map((b) => el("option", { value: b.name }, bookLabel(b))));
  return data;
}

function bookLabel(book) {
  const share = book.shared;
  if (!share) return book.name;
  // As devices name it ("Family (alice)", shares.py), and whether it can be changed here.
  return `${share.category || share.book} (${share.owner}${share.access === "rw" ? "" : ", read-only"})`;
}

const readOnly = () => Boolean(state.book && state.book.shared && state.book.shared.access !== "rw");
const sharedBook = () => Boolean(state.book && state.book.shared);

/** Show `book` on the contacts page: a shared one hides what it does not answer. */
function useBook(book) {
  state.book = book;
  if (!book.shared) state.home = book;
  state.list.url = book.url;
  $("#book-choice").value = book.name;
  const share = book.shared;
  const note = $("#book-note");
  note.hidden = !share;
  note.textContent = share ? `${share.owner} shares ${shareWhat(share)} with you `
    + (share.access === "rw" ? "to read and change: your changes go to their book."
      : "read-only: you can read it, not change it.") : "";
  $("#new-contact").hidden = readOnly();
  $("#new-category").hidden = sharedBook();  // a shared book's categories are its owner's
  for (const id of ["#selection-category", "#selection-add", "#selection-remove"]) $(id).hidden = sharedBook();
  $("#selection-delete").hidden = readOnly();
}

/** The alerts of mass deletes in the book shown; a shared book's are its owner's. */
function bookAlerts() {
  if (sharedBook()) {
    $("#alerts").hidden = true;
    return Promise.resolve();
  }
  return showAlerts(state.book, () => refreshAll().catch(() => {}));
}

async function chooseBook() {
  const chooser = $("#book-choice");
  const book = state.books.find((b) => b.name === chooser.value);
  if (!book || book === state.book) return;
  if (!(await drafts.confirmLeave())) {
    chooser.value = state.book.name;
    return;
  }
  state.wantedBook = book.name;
  state.contact = null;
  state.category = null;
  state.list.selected.clear();
  state.updateSelection(state.list.selected);
  useBook(book);
  showCategory();
  $("#detail").replaceChildren(emptyDetail());
  document.body.classList.remove("showing-detail");
  if (parseHash().page !== "contacts" || parseHash().id) history.pushState(null, "", contactsHash(null));
  showPage("contacts");
  await Promise.all([loadCategories(), state.list.setQuery({ category: null })]).catch((e) => toast(message(e)));
  writeUrl();
  bookAlerts();
}

/** After a share is accepted or ended: the chooser follows; a book that went is left. */
async function booksChanged() {
  await loadBooks();
  const still = state.books.find((b) => b.name === state.book.name);
  if (still) {
    state.book = still;
    $("#book-choice").value = still.name;
  } else if (state.home) {
    state.wantedBook = null;
    useBook(state.home);
    await Promise.all([loadCategories(), state.list.setQuery({ category: null })]).catch(() => {});
  }
}

async function start() {
  const data = await loadBooks();
  const book = state.books.find((b) => b.name === state.wantedBook) || state.home || state.books[0];
  if (!book) throw new Error("You have no address book yet.");
  $("#signin-password").value = "";
  $("#signin").hidden = true;
  $("#app").hidden = false;
  $("#who").textContent = data.user;
  if (!state.list) {
    state.list = new ContactList({
      container: $("#list"), spacer: $("#list-spacer"), booksUrl: book.url,
      onOpen: (id, { focus } = {}) => {
        if (state.contact && state.contact.id === id && !state.editing && parseHash().id === id) {
          if (focus) $("#contact-name").focus();
          return;
        }
        state.focusContact = Boolean(focus);
        location.hash = contactsHash(id);
      },
      onSelection: (selected) => state.updateSelection(selected), onCount: updateCount,
      onLetters: renderLetters,
    });
    state.updateSelection = setUpSelection({ list: state.list, book: () => state.book,
      categories: () => state.categories, categoryUrl, refresh: refreshAll });
  }
  useBook(book);
  state.refreshExport = setUpTransferOnce();
  const { params } = parseHash();
  const sort = params.get("sort") || localStorage.getItem("cardfile.sort") || "name";
  state.category = params.get("category");
  $("#search").value = params.get("q") || "";
  $("#sort-order").value = sort === "family" ? "family" : "name";
  showCategory();
  await Promise.all([loadCategories(), state.list.setQuery({
    q: $("#search").value.trim(), category: state.category, sort: $("#sort-order").value })]);
  const draft = drafts.saved(data.user, book.name);
  if (draft) {
    await restoreDraft(draft);
    return;
  }
  route();
  bookAlerts();
  // The keyboard starts where the work is: the search box (or the contact the URL names).
  // On a touch screen that would open the on-screen keyboard: the page itself then.
  if (!parseHash().id) (matchMedia("(pointer: coarse)").matches ? $("#main") : $("#search")).focus();
}

let transferReady = null;
function setUpTransferOnce() {
  if (!transferReady) {
    // Import and export are of your own book (a shared book answers only its contacts).
    transferReady = setUpTransfer({ get import() { return state.home.import; },
      get export() { return state.home.export; } }, () => (sharedBook() ? [] : state.categories), refreshAll);
  }
  return transferReady;
}

async function signOut() {
  if (!(await drafts.confirmLeave())) return;
  drafts.forget();
  api.forget();
  forgetPhotos();
  forgetSources();
  forgetSharing();
  state.contact = null;
  state.wantedBook = null;
  state.home = null;
  state.editing = false;
  state.categories = [];
  state.category = null;
  $("#list-title").textContent = "All contacts";
  $("#category-tools").hidden = true;
  if (state.list) {
    state.list.selected.clear();
    state.list.items = [];
    state.list.total = 0;
    state.list.render();
    state.updateSelection(state.list.selected);
  }
  $("#detail").replaceChildren(emptyDetail());
  $("#category-list").replaceChildren();
  $("#letters").replaceChildren();
  $("#search").value = "";
  $("#app").hidden = true;
  $("#signin").hidden = false;
  $("#signin-error").textContent = "";
  history.replaceState(null, "", location.pathname);
  $("#signin-user").focus();
}

function expired() {
  if ($("#app").hidden) return;
  // The draft stays in this tab: signing in again brings it back.
  drafts.keep();
  state.editing = false;
  state.contact = null;
  api.forget();
  forgetSharing();
  $("#app").hidden = true;
  $("#signin").hidden = false;
  $("#signin-error").textContent = "Your sign-in is no longer valid; sign in again.";
  $("#signin-user").focus();
}

// -- categories -------------------------------------------------------------------------
async function loadCategories() {
  if (sharedBook()) {
    state.categories = [];  // its owner's to manage: a shared book answers only its contacts
  } else {
    const { data } = await api.get(`${state.book.url}/categories`);
    state.categories = data.items;
  }
  renderCategories();
  state.refreshExport();
}

function renderCategories() {
  const list = $("#category-list");
  const total = state.list ? state.list.allTotal : undefined;
  const entry = (name, label, count) => el("li", {},
    el("button", { type: "button", class: "category", "aria-pressed": String(state.category === name),
      dataset: { name: name || "" }, onclick: () => chooseCategory(name) },
    el("span", { class: "category-name" }, label),
    el("span", { class: "category-count", "aria-label": `${count} contacts` }, count === undefined ? "" : String(count))));
  list.replaceChildren(entry(null, "All contacts", total),
    ...state.categories.map((c) => entry(c.name, c.name, c.count)));
  state.updateSelection(state.list ? state.list.selected : new Map());
}

function showCategory() {
  $("#list-title").textContent = state.category || "All contacts";
  $("#category-tools").hidden = !state.category;
}

async function chooseCategory(name) {
  if (!(await drafts.confirmLeave())) return;
  state.category = name;
  closeDrawer();
  showCategory();
  renderCategories();
  await state.list.setQuery({ category: name }).catch((e) => toast(message(e)));
  if (parseHash().page !== "contacts" || parseHash().id) location.hash = contactsHash(null);
  else writeUrl();
}

async function createCategory(event) {
  event.preventDefault();
  const input = $("#new-category-name");
  const name = input.value.trim();
  if (!name) return;
  try {
    await api.request("POST", `${state.book.url}/categories`, { body: { name } });
    input.value = "";
    await loadCategories();
    toast(`Category ${name} created.`);
  } catch (e) {
    toast(message(e));
  }
}

function categoryUrl(name) {
  const found = state.categories.find((c) => c.name === name);
  return found ? found.url : `${state.book.url}/categories/${encodeURIComponent(name)}`;
}

async function renameCategory() {
  const old = state.category;
  const name = await ask({ title: `Rename ${old}`, label: "New name", value: old, ok: "Rename" });
  if (!name || name === old) {
    $("#rename-category").focus();
    return;
  }
  try {
    const { data } = await api.request("PUT", categoryUrl(old), { body: { name } });
    state.category = data.name;
    showCategory();
    await loadCategories();
    await state.list.setQuery({ category: data.name });
    writeUrl();
    toast(`Renamed ${old} to ${data.name}.`);
    reopenContact();
  } catch (e) {
    toast(message(e));
  }
  $("#rename-category").focus();
}

async function deleteCategory() {
  const name = state.category;
  const found = state.categories.find((c) => c.name === name);
  const count = found ? found.count : 0;
  const ok = await ask({ title: `Delete the category ${name}?`, ok: "Delete category", danger: true,
    text: count ? `Its ${count} contact${count === 1 ? "" : "s"} stay in your address book; only the category goes.`
      : "It has no contacts." });
  if (!ok) {
    $("#delete-category").focus();
    return;
  }
  try {
    await api.request("DELETE", categoryUrl(name));
    toast(`Category ${name} deleted.`);
    await chooseCategory(null);
    await loadCategories();
    reopenContact();
    $("#category-list .category").focus();
  } catch (e) {
    toast(message(e));
  }
}

// -- the list, the A-Z index and one contact ---------------------------------------------
function updateCount(total) {
  const filtered = state.list.query.q || state.list.query.category;
  if (!filtered) {
    state.list.allTotal = total;
    const all = $("#category-list .category[data-name=''] .category-count");
    if (all) all.textContent = String(total);
  }
  $("#list-count").textContent = `${total.toLocaleString()} contact${total === 1 ? "" : "s"}`;
}

function renderLetters(items) {
  const nav = $("#letters");
  nav.replaceChildren(...items.filter((i) => i.letter !== "…" || i.count).map((item) => el("button", {
    // Not a Tab stop each (27 of them): from the keyboard, type the letter in the list.
    type: "button", class: "letter", disabled: !item.count, tabindex: "-1",
    "aria-label": item.count ? `${item.letter === "#" ? "Numbers and signs" : item.letter}: ${item.count} contact${item.count === 1 ? "" : "s"}`
      : `${item.letter}: none`,
    onclick: () => state.list.focusRow(item.offset, { top: true }),
  }, item.letter)));
}

let searchTimer = null;
function searchTyped() {
  clearTimeout(searchTimer);
  searchTimer = setTimeout(async () => {
    if (parseHash().page !== "contacts") location.hash = contactsHash(null);
    await state.list.setQuery({ q: $("#search").value.trim() }).catch((e) => toast(message(e)));
    writeUrl();
  }, 200);
}

async function sortChosen() {
  const sort = $("#sort-order").value;
  localStorage.setItem("cardfile.sort", sort);  // a preference, nothing personal
  await state.list.setQuery({ sort }).catch((e) => toast(message(e)));
  writeUrl();
}

function emptyDetail() {
  return el("div", { class: "empty-detail" }, el("p", {}, "Choose a contact to see it here."));
}

async function refreshAll() {
  await Promise.all([loadCategories(), state.list.reload(),
    bookAlerts()]);
  if (state.list.query.q === "" && state.list.query.category === null) return;
  const { data } = await api.get(`${state.book.url}/contacts?limit=1&fields=id`);
  state.list.allTotal = data.total;
  renderCategories();
}

async function openContact(id, { focus = false } = {}) {
  const detail = $("#detail");
  document.body.classList.add("showing-detail");
  state.list.setActive(id);
  try {
    const { data, headers } = await api.get(`${state.book.url}/contacts/${encodeURIComponent(id)}`);
    data.etag = headers.get("ETag") || data.etag;
    state.contact = data;
    state.editing = false;
    detail.replaceChildren(view(data));
    // Opened with the keyboard, or on a phone where the list just went away:
    // take the focus along to the card.
    if (focus || (!$("#list").offsetParent && !detail.contains(document.activeElement))) {
      $("#contact-name").focus();
    }
  } catch (e) {
    state.contact = null;
    detail.replaceChildren(el("div", { class: "empty-detail" }, el("p", { class: "error" },
      e.status === 404 ? "This contact does not exist (any more)." : message(e))));
  }
}

function reopenContact() {
  if (state.contact && !state.editing) openContact(state.contact.id);
}

function view(contact) {
  const writable = !readOnly();
  const own = !sharedBook();
  const card = renderView(contact, state.categories, {
    back: () => { location.hash = contactsHash(null); },
    edit: writable ? () => edit(contact) : null,
    remove: writable ? async () => {
      try {
        await deleteWithUndo(contact, state.book.url, async (restoredId) => {
          if (restoredId) {
            await refreshAll();
            location.hash = contactsHash(restoredId);
            return;
          }
          state.contact = null;
          location.hash = contactsHash(null);
          $("#detail").replaceChildren(emptyDetail());
          await refreshAll();
          state.list.focusCurrent();
        });
      } catch (e) {
        if (e.status === 412) staleDelete(contact);
        else toast(message(e));
      }
    } : null,
    addCategory: own ? (name) => memberChange(contact, name, true) : null,
    removeCategory: own ? (name) => memberChange(contact, name, false) : null,
  });
  if (!own) {
    const share = state.book.shared;
    card.querySelector(".detail-actions").append(el("p", { class: "read-only-note" }, writable
      ? `Shared by ${share.owner}: changes go to their book.` : `Read-only: shared by ${share.owner}.`));
    return card;  // its history is its owner's
  }
  const toggle = el("button", { type: "button", id: "history-contact", "aria-expanded": "false",
    onclick: async () => {
      const open = card.querySelector("#history-panel");
      if (open) {
        open.remove();
        toggle.setAttribute("aria-expanded", "false");
        return;
      }
      toggle.setAttribute("aria-expanded", "true");
      card.append(await historyPanel(contact, async () => {
        await openContact(contact.id);
        state.list.update(state.contact);
      }));
    } }, "History");
  card.querySelector(".detail-actions").append(toggle);
  return card;
}

function staleDelete(contact) {
  const box = el("div", { class: "conflict", role: "alert" },
    el("p", {}, el("strong", {}, "This contact was changed somewhere else "),
      "after you opened it, so it was not deleted. Reload it to see the current version."),
    el("button", { type: "button", class: "primary", id: "reload-contact",
      onclick: () => openContact(contact.id, { focus: true }) }, "Reload contact"));
  $("#detail .contact-card").prepend(box);
  box.querySelector("button").focus();
}

async function memberChange(contact, name, add) {
  try {
    const url = categoryUrl(name);
    if (add) await api.request("POST", `${url}/members`, { body: { ids: [contact.id] } });
    else await api.request("DELETE", `${url}/members?id=${encodeURIComponent(contact.id)}`);
    await openContact(contact.id);
    await loadCategories();
    state.list.update(state.contact);
    toast(add ? `Added to ${name}.` : `Removed from ${name}.`);
    $("#contact-name").focus();
  } catch (e) {
    toast(message(e));
  }
}

// -- editing: the form, its draft, saving (merged with changes made elsewhere) ----------------
function edit(contact, { isNew = false, draft = null, etag = null } = {}) {
  state.editing = true;
  const id = isNew ? null : contact.id;
  const close = () => {
    drafts.untrack();
    state.editing = false;
  };
  const controller = renderForm(contact, state.categories, {
    isNew, draft,
    onInput: drafts.changed,
    onCancel: async () => {
      if (!(await drafts.confirmLeave())) return;
      finishCancel();
    },
    onSave: (change) => save(contact, change, isNew, controller),
  });
  function finishCancel() {
    close();
    if (isNew) {
      $("#detail").replaceChildren(emptyDetail());
      document.body.classList.remove("showing-detail");
      state.list.focusCurrent();
    } else {
      $("#detail").replaceChildren(view(contact));
      $("#edit-contact").focus();
    }
  }
  const hash = contactsHash(id);
  drafts.track({
    id,
    dirty: controller.dirty,
    focus: () => (controller.form.contains(state.lastFocus) ? state.lastFocus : controller.form.querySelector("input")).focus(),
    snapshot: () => ({ user: api.user(), book: state.book.name, id, isNew, etag: etag || contact.etag,
      contact, data: controller.data(), hash }),
    save: async () => {
      controller.form.requestSubmit();
      return new Promise((resolve) => { controller.form.addEventListener("saved", (e) => resolve(e.detail), { once: true }); });
    },
    discard: () => {
      close();
      if (!isNew) $("#detail").replaceChildren(view(contact));
      else $("#detail").replaceChildren(emptyDetail());
    },
  });
  $("#detail").replaceChildren(controller.form);
  document.body.classList.add("showing-detail");
  state.lastHash = location.hash;
  if (draft) {
    controller.status.replaceChildren(el("p", { class: "restored" },
      "Your unsaved changes from before are back. Save them, or Cancel and Discard them."));
  }
  controller.form.querySelector("input[name=name]").focus();
  return controller;
}

/** The form's outcome for whoever waits on it (the leave dialog's Save). */
function settled(controller, ok) {
  controller.form.dispatchEvent(new CustomEvent("saved", { detail: ok }));
}

async function save(contact, { patch, base, photo: photoFile, crop, status }, isNew, controller, etag = null) {
  try {
    const photo = photoFile ? await shrink(photoFile, crop) : null;  // a bad picture stops here
    let saved;
    if (isNew) {
      const { data, headers } = await api.request("POST", `${state.book.url}/contacts`, { body: patch });
      saved = { ...data, etag: headers.get("ETag") || data.etag };
    } else if (Object.keys(patch).length) {
      // base: the values these fields had when the form opened. If the contact
      // changed elsewhere meanwhile, the API merges what does not clash.
      const { data, headers } = await api.request("PATCH", contact.url, { body: { ...patch, base },
        headers: { "Content-Type": "application/merge-patch+json", "If-Match": etag || contact.etag } });
      saved = { ...data, etag: headers.get("ETag") || data.etag };
    } else {
      saved = contact;  // nothing changed: nothing is written
    }
    drafts.untrack();
    state.editing = false;
    if (photo) {
      try {
        await writePhoto(saved, photo);
      } catch (e) {
        toast(`Saved, but the photo was not: ${message(e)}`);
      }
    }
    const mergedElsewhere = !isNew && Object.keys(patch).length && Object.keys(saved).some((key) =>
      !(key in patch) && !["etag", "updated", "photo", "url", "id", "uid"].includes(key)
      && JSON.stringify(saved[key] ?? null) !== JSON.stringify(contact[key] ?? null));
    toast(isNew ? `${displayName(saved)} added.`
      : mergedElsewhere ? "Saved, together with the changes made elsewhere meanwhile." : "Saved.");
    if (isNew) {
      state.focusContact = true;
      location.hash = contactsHash(saved.id);
      await refreshAll();
    } else {
      await openContact(saved.id, { focus: true });
      state.list.update(state.contact);
      if (patch.categories) await loadCategories();
      if (patch.name !== undefined || patch.given !== undefined || patch.family !== undefined) state.list.reload();
    }
    settled(controller, true);
  } catch (e) {
    settled(controller, false);
    if (e.status === 409 && e.body && e.body.conflicts) {
      showClash(contact, e.body, patch, controller, isNew);
    } else {
      const id = `form-error-${Date.now()}`;
      status.replaceChildren(el("p", { class: "error", id }, message(e)));
      // The server names the entry it refused (an email its rule rejects): mark it.
      const body = e.body || {};
      const inputs = body.field && Number.isInteger(body.index) ? [...controller.form.querySelectorAll(
        `.entries[data-field=${body.field}] .entry input[name=value]`)].filter((i) => i.value.trim()) : [];
      const input = inputs[body.index];
      if (input) {
        input.setAttribute("aria-invalid", "true");
        input.setAttribute("aria-describedby", id);
        input.addEventListener("input", () => input.removeAttribute("aria-invalid"), { once: true });
        input.focus();
      }
    }
  }
}

/** Fields changed on both sides: choose, then save against the current version. */
function showClash(contact, problem, patch, controller, isNew) {
  const panel = renderClash(problem, (values, etag, current) => {
    const chosen = { ...patch, ...values };
    const base = {};
    for (const key of Object.keys(chosen)) base[key] = current[key] ?? null;
    save({ ...contact, etag }, { patch: chosen, base, photo: null, status: controller.status },
      isNew, controller, etag);
  });
  controller.status.replaceChildren(panel);
  panel.querySelector("h3").focus();
}

async function newContact() {
  if (!(await drafts.confirmLeave())) return;
  if (parseHash().id) history.pushState(null, "", contactsHash(null));
  state.list.setActive(null);
  state.contact = null;
  const blank = { name: "", given: "", family: "", emails: [], phones: [], urls: [], addresses: [],
    categories: state.category ? [state.category] : [], organization: null, title: null,
    birthday: null, notes: null, photo: null };
  edit(blank, { isNew: true });
}

async function restoreDraft(draft) {
  showPage("contacts");
  if (draft.isNew) {
    history.replaceState(null, "", contactsHash(null));
    edit(draft.contact, { isNew: true, draft: draft.data });
    return;
  }
  history.replaceState(null, "", contactsHash(draft.id));
  state.lastHash = location.hash;
  state.list.setActive(draft.id);
  state.contact = draft.contact;
  // Saved against the version it was opened from: a change made elsewhere since is merged.
  edit(draft.contact, { draft: draft.data, etag: draft.etag });
}

// -- routing and the drawer (phones) -------------------------------------------------------
/** No password or token shown once, and no one's friends, stay in the DOM after sign-out. */
function forgetSharing() {
  forgetDevices();
  forgetTokens();
  forgetFriends();
  forgetShares();
}

function showPage(name) {
  // A password or token shown once goes when its page is left.
  if (name !== "devices") {
    forgetDevices();
    forgetTokens();
  }
  for (const page of document.querySelectorAll(".page")) page.hidden = page.id !== `page-${name}`;
  for (const link of document.querySelectorAll(".nav a")) {
    if (link.dataset.page === name) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
}

let routing = false;
async function route() {
  if (!api.signedIn() || $("#app").hidden || routing) return;
  // Leaving an edited form: back to its address while the user decides.
  if (drafts.dirty() && state.lastHash && location.hash !== state.lastHash) {
    const target = location.hash;
    history.replaceState(null, "", state.lastHash);
    routing = true;
    const go = await drafts.confirmLeave();
    routing = false;
    if (!go) return;
    history.pushState(null, "", target);
  }
  const { page, id, params, hasQuery } = parseHash();
  closeDrawer();
  if (page === "contacts" && hasQuery) {
    const wanted = { q: params.get("q") || "", category: params.get("category"),
      sort: params.get("sort") === "family" ? "family" : "name" };
    const now = state.list.query;
    if (wanted.q !== now.q || wanted.category !== now.category || wanted.sort !== now.sort) {
      $("#search").value = wanted.q;
      $("#sort-order").value = wanted.sort;
      state.category = wanted.category;
      showCategory();
      renderCategories();
      await state.list.setQuery(wanted).catch((e) => toast(message(e)));
    }
  }
  if (page === "duplicates") {
    showPage("duplicates");
    showDuplicates(state.home, () => refreshAll().catch(() => {}));
  } else if (page === "transfer") {
    showPage("transfer");
    state.refreshExport();
  } else if (page === "trash") {
    showPage("trash");
    showTrash(state.home, () => refreshAll().catch(() => {}));
  } else if (page === "device") {
    showPage("device");
    showDevice(state.home);
  } else if (page === "sources") {
    showPage("sources");
    showSources();
  } else if (page === "devices") {
    showPage("devices");
    showDevices();
    showTokens();
  } else if (page === "friends") {
    showPage("friends");
    showFriends(state.home);
    showShares(booksChanged);
  } else {
    showPage("contacts");
    if (id) {
      if (!state.contact || state.contact.id !== id || !state.editing) {
        const focus = state.focusContact;
        state.focusContact = false;
        await openContact(id, { focus });
      }
    } else if (!state.editing) {
      document.body.classList.remove("showing-detail");
      state.list.setActive(null);
    }
    writeUrl();
  }
  state.lastHash = location.hash;
}

function openDrawer() {
  document.body.classList.add("drawer-open");
  $("#menu-toggle").setAttribute("aria-expanded", "true");
  $("#scrim").hidden = false;
  // Modal on a phone: the rest of the page cannot be reached until it closes.
  for (const part of [$("#main"), $(".topbar")]) part.inert = true;
  $("#menu-close").focus();
}

function closeDrawer() {
  if (!document.body.classList.contains("drawer-open")) return;
  document.body.classList.remove("drawer-open");
  $("#menu-toggle").setAttribute("aria-expanded", "false");
  $("#scrim").hidden = true;
  for (const part of [$("#main"), $(".topbar")]) part.inert = false;
  const sidebar = $("#sidebar");
  if (sidebar.contains(document.activeElement) || document.activeElement === document.body) {
    $("#menu-toggle").focus();
  }
}

/** Tab and Shift+Tab stay inside the open drawer. */
function trapDrawer(event) {
  if (event.key !== "Tab" || !document.body.classList.contains("drawer-open")) return;
  const focusable = [...$("#sidebar").querySelectorAll("a, button, input, select")]
    .filter((e) => !e.disabled && e.offsetParent !== null);
  if (!focusable.length) return;
  const first = focusable[0];
  const last = focusable[focusable.length - 1];
  if (event.shiftKey && document.activeElement === first) {
    event.preventDefault();
    last.focus();
  } else if (!event.shiftKey && document.activeElement === last) {
    event.preventDefault();
    first.focus();
  }
}

function init() {
  api.whenUnauthorized(expired);
  drafts.guardUnload();
  $("#signin-form").addEventListener("submit", signIn);
  $("#signout").addEventListener("click", signOut);
  $("#search").addEventListener("input", searchTyped);
  $("#search").addEventListener("keydown", (event) => {
    if (event.key === "ArrowDown") {
      event.preventDefault();
      state.list.focusRow(0);
    }
  });
  $("#sort-order").addEventListener("change", sortChosen);
  $("#book-choice").addEventListener("change", chooseBook);
  $("#new-category").addEventListener("submit", createCategory);
  $("#rename-category").addEventListener("click", renameCategory);
  $("#delete-category").addEventListener("click", deleteCategory);
  $("#new-contact").addEventListener("click", newContact);
  $("#menu-toggle").addEventListener("click", () => (document.body.classList.contains("drawer-open")
    ? closeDrawer() : openDrawer()));
  $("#menu-close").addEventListener("click", closeDrawer);
  $("#scrim").addEventListener("click", closeDrawer);
  // Escape in a contact's card goes back to its row in the list.
  $("#detail").addEventListener("keydown", (event) => {
    if (event.key !== "Escape" || state.editing || event.defaultPrevented) return;
    event.preventDefault();
    if (!$("#list").offsetParent) location.hash = contactsHash(null);
    state.list.focusCurrent();
  });
  document.addEventListener("focusin", (event) => { state.lastFocus = event.target; });
  document.addEventListener("keydown", (event) => {
    trapDrawer(event);
    if (event.key === "Escape") closeDrawer();
    if (event.key === "/" && !/input|textarea|select/i.test(document.activeElement.tagName)) {
      event.preventDefault();
      $("#search").focus();
    }
  });
  window.addEventListener("hashchange", route);
  setUpCopyButtons();
  setUpTrashPage(() => state.home, () => state.categories, () => refreshAll().catch(() => {}));
  $("#signin-user").focus();  // credentials are kept in memory only: a reload signs in again
}

init();
