// Cardfile's contacts page: sign-in, the address book, categories and the other pages.
//
// Everything goes through the JSON API (api.js). The page is routed by the URL
// fragment (#/contacts, #/contacts/ID, #/duplicates, #/transfer, #/device), so
// Back works and a contact can be bookmarked without anything secret in it.

import * as api from "./api.js";
import { el, $, ask, toast, displayName, forgetPhotos } from "./ui.js";
import { ContactList } from "./list.js";
import { renderView, renderForm, writePhoto, deleteWithUndo, shrink } from "./contact.js";
import { showDuplicates, setUpTransfer, showDevice, setUpCopyButtons } from "./pages.js";
import { historyPanel, showTrash, setUpTrashPage, showAlerts } from "./history.js";
import { showSources, forgetSources } from "./sources.js";

const state = {
  book: null,
  categories: [],
  category: null,
  list: null,
  contact: null,
  editing: false,
  refreshExport: () => {},
};

const message = (e) => (e instanceof api.ApiError ? e.message : String(e));

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

async function start() {
  const { data } = await api.get("", { quiet401: true });
  const book = data.books.find((b) => b.name === "contacts") || data.books[0];
  if (!book) throw new Error("You have no address book yet.");
  state.book = book;
  $("#signin-password").value = "";
  $("#signin").hidden = true;
  $("#app").hidden = false;
  $("#who").textContent = data.user;
  if (!state.list) {
    state.list = new ContactList({
      container: $("#list"), spacer: $("#list-spacer"), booksUrl: book.url,
      onOpen: (id) => { location.hash = `#/contacts/${encodeURIComponent(id)}`; },
      onSelection: updateSelectionBar, onCount: updateCount,
    });
  }
  state.list.url = book.url;
  state.refreshExport = setUpTransferOnce();
  await Promise.all([loadCategories(), state.list.setQuery({ q: "", category: null })]);
  route();
  showAlerts(state.book, () => refreshAll().catch(() => {}));
}

let transferReady = null;
function setUpTransferOnce() {
  if (!transferReady) {
    transferReady = setUpTransfer({ get import() { return state.book.import; },
      get export() { return state.book.export; } }, () => state.categories, refreshAll);
  }
  return transferReady;
}

function signOut() {
  api.forget();
  forgetPhotos();
  forgetSources();
  state.contact = null;
  state.editing = false;
  state.categories = [];
  state.category = null;
  $("#list-title").textContent = "All contacts";
  $("#category-tools").hidden = true;
  if (state.list) {
    state.list.selected.clear();
    state.list.items = [];
    state.list.render();
  }
  $("#detail").replaceChildren(emptyDetail());
  $("#category-list").replaceChildren();
  $("#search").value = "";
  $("#app").hidden = true;
  $("#signin").hidden = false;
  $("#signin-error").textContent = "";
  history.replaceState(null, "", location.pathname);
  $("#signin-user").focus();
}

function expired() {
  if ($("#app").hidden) return;
  signOut();
  $("#signin-error").textContent = "Your sign-in is no longer valid; sign in again.";
}

// -- categories -------------------------------------------------------------------------
async function loadCategories() {
  const { data } = await api.get(`${state.book.url}/categories`);
  state.categories = data.items;
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
  const selectable = $("#selection-category");
  const current = selectable.value;
  selectable.replaceChildren(...state.categories.map((c) => el("option", { value: c.name }, c.name)));
  if (state.categories.some((c) => c.name === current)) selectable.value = current;
  updateSelectionBar(state.list ? state.list.selected : new Map());
}

function chooseCategory(name) {
  state.category = name;
  closeDrawer();
  $("#list-title").textContent = name || "All contacts";
  $("#category-tools").hidden = !name;
  renderCategories();
  if (location.hash.startsWith("#/contacts/") || !location.hash.startsWith("#/contacts")) {
    location.hash = "#/contacts";
  }
  state.list.setQuery({ category: name }).catch((e) => toast(message(e)));
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
  if (!name || name === old) return;
  try {
    const { data } = await api.request("PUT", categoryUrl(old), { body: { name } });
    state.category = data.name;
    $("#list-title").textContent = data.name;
    await loadCategories();
    await state.list.setQuery({ category: data.name });
    toast(`Renamed ${old} to ${data.name}.`);
    reopenContact();
  } catch (e) {
    toast(message(e));
  }
}

async function deleteCategory() {
  const name = state.category;
  const found = state.categories.find((c) => c.name === name);
  const count = found ? found.count : 0;
  const ok = await ask({ title: `Delete the category ${name}?`, ok: "Delete category", danger: true,
    text: count ? `Its ${count} contact${count === 1 ? "" : "s"} stay in your address book; only the category goes.`
      : "It has no contacts." });
  if (!ok) return;
  try {
    await api.request("DELETE", categoryUrl(name));
    toast(`Category ${name} deleted.`);
    chooseCategory(null);
    await loadCategories();
    reopenContact();
  } catch (e) {
    toast(message(e));
  }
}

// -- selection: several contacts into or out of a category ------------------------------
function updateSelectionBar(selected) {
  const n = selected.size;
  $("#selection-count").textContent = n ? `${n} selected` : "Tick contacts to group them.";
  const none = !n;
  $("#selection-clear").disabled = none;
  const noCats = !state.categories.length;
  $("#selection-category").disabled = none || noCats;
  $("#selection-add").disabled = none || noCats;
  $("#selection-remove").disabled = none || noCats;
}

async function changeMembers(add) {
  const name = $("#selection-category").value;
  const ids = [...state.list.selected.keys()];
  if (!name || !ids.length) return;
  try {
    if (add) {
      await api.request("POST", `${categoryUrl(name)}/members`, { body: { ids } });
    } else {
      const query = ids.map((id) => `id=${encodeURIComponent(id)}`).join("&");
      await api.request("DELETE", `${categoryUrl(name)}/members?${query}`);
    }
    toast(`${add ? "Added" : "Removed"} ${ids.length} contact${ids.length === 1 ? "" : "s"} ${add ? "to" : "from"} ${name}.`);
    state.list.clearSelection();
    await refreshAll();
  } catch (e) {
    toast(message(e));
  }
}

// -- the list and one contact -------------------------------------------------------------
function updateCount(total) {
  const filtered = state.list.query.q || state.list.query.category;
  if (!filtered) {
    state.list.allTotal = total;
    const all = $("#category-list .category[data-name=''] .category-count");
    if (all) all.textContent = String(total);
  }
  $("#list-count").textContent = `${total.toLocaleString()} contact${total === 1 ? "" : "s"}`;
}

let searchTimer = null;
function searchTyped() {
  clearTimeout(searchTimer);
  searchTimer = setTimeout(() => {
    if (!location.hash.startsWith("#/contacts")) location.hash = "#/contacts";
    state.list.setQuery({ q: $("#search").value.trim() }).catch((e) => toast(message(e)));
  }, 200);
}

function emptyDetail() {
  return el("div", { class: "empty-detail" }, el("p", {}, "Choose a contact to see it here."));
}

async function refreshAll() {
  await Promise.all([loadCategories(), state.list.reload(),
    showAlerts(state.book, () => refreshAll().catch(() => {}))]);
  if (state.list.query.q === "" && state.list.query.category === null) return;
  const { data } = await api.get(`${state.book.url}/contacts?limit=1&fields=id`);
  state.list.allTotal = data.total;
  renderCategories();
}

async function openContact(id) {
  const detail = $("#detail");
  document.body.classList.add("showing-detail");
  state.list.setActive(id);
  try {
    const { data, headers } = await api.get(`${state.book.url}/contacts/${encodeURIComponent(id)}`);
    data.etag = headers.get("ETag") || data.etag;
    state.contact = data;
    state.editing = false;
    detail.replaceChildren(view(data));
    // On a phone the list just went away: take keyboard focus along to the card.
    if (!$("#list").offsetParent && detail.contains(document.activeElement) === false) {
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
  const card = renderView(contact, state.categories, {
    back: () => { location.hash = "#/contacts"; },
    edit: () => edit(contact),
    remove: async () => {
      try {
        await deleteWithUndo(contact, state.book.url, async (restoredId) => {
          if (restoredId) {
            await refreshAll();
            location.hash = `#/contacts/${encodeURIComponent(restoredId)}`;
            return;
          }
          state.contact = null;
          location.hash = "#/contacts";
          $("#detail").replaceChildren(emptyDetail());
          await refreshAll();
        });
      } catch (e) {
        if (e.status === 412) conflict(contact, $("#detail .contact-card"));
        else toast(message(e));
      }
    },
    addCategory: (name) => memberChange(contact, name, true),
    removeCategory: (name) => memberChange(contact, name, false),
  });
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

async function memberChange(contact, name, add) {
  try {
    const url = categoryUrl(name);
    if (add) await api.request("POST", `${url}/members`, { body: { ids: [contact.id] } });
    else await api.request("DELETE", `${url}/members?id=${encodeURIComponent(contact.id)}`);
    await openContact(contact.id);
    await loadCategories();
    state.list.update(state.contact);
    toast(add ? `Added to ${name}.` : `Removed from ${name}.`);
  } catch (e) {
    toast(message(e));
  }
}

function edit(contact, isNew = false) {
  state.editing = true;
  const form = renderForm(contact, state.categories, {
    isNew,
    onCancel: () => {
      state.editing = false;
      if (isNew) {
        $("#detail").replaceChildren(emptyDetail());
        document.body.classList.remove("showing-detail");
      } else {
        $("#detail").replaceChildren(view(contact));
      }
    },
    onSave: (patch, photo, status) => save(contact, patch, photo, status, isNew),
  });
  $("#detail").replaceChildren(form);
  document.body.classList.add("showing-detail");
  form.querySelector("input[name=name]").focus();
}

async function save(contact, patch, photoFile, status, isNew) {
  try {
    const photo = photoFile ? await shrink(photoFile) : null;  // a bad picture stops here
    let saved;
    if (isNew) {
      const { data, headers } = await api.request("POST", `${state.book.url}/contacts`, { body: patch });
      saved = { ...data, etag: headers.get("ETag") || data.etag };
    } else if (Object.keys(patch).length) {
      const { data, headers } = await api.request("PATCH", contact.url, { body: patch,
        headers: { "Content-Type": "application/merge-patch+json", "If-Match": contact.etag } });
      saved = { ...data, etag: headers.get("ETag") || data.etag };
    } else {
      saved = contact;
    }
    state.editing = false;
    if (photo) {
      try {
        await writePhoto(saved, photo);
      } catch (e) {
        toast(`Saved, but the photo was not: ${message(e)}`);
      }
    }
    const newCategory = (patch.categories || []).some((c) => !state.categories.some(
      (k) => k.name.toLowerCase() === c.toLowerCase()));
    toast(isNew ? `${displayName(saved)} added.` : "Saved.");
    if (isNew) {
      location.hash = `#/contacts/${encodeURIComponent(saved.id)}`;
      await refreshAll();
    } else {
      await openContact(saved.id);
      state.list.update(state.contact);
      if (patch.name !== undefined || newCategory || patch.categories) await loadCategories();
      if (patch.name !== undefined) state.list.reload();
    }
  } catch (e) {
    if (e.status === 412) conflict(contact, status);
    else status.replaceChildren(el("p", { class: "error" }, message(e)));
  }
}

/** The contact changed elsewhere since it was opened: say so, keep the form, offer a reload. */
function conflict(contact, where) {
  const box = el("div", { class: "conflict", role: "alert" },
    el("p", {}, el("strong", {}, "This contact was changed somewhere else "),
      "(another device or window) after you opened it, so your changes were not saved. ",
      "Reload it to see the current version, then make your changes again."),
    el("button", { type: "button", class: "primary", id: "reload-contact",
      onclick: () => openContact(contact.id) }, "Reload contact"));
  if (where.classList.contains("form-status")) where.replaceChildren(box);
  else where.prepend(box);
  box.querySelector("button").focus();
}

function newContact() {
  location.hash = "#/contacts";
  state.list.setActive(null);
  state.contact = null;
  const blank = { name: "", given: "", family: "", emails: [], phones: [], urls: [], addresses: [],
    categories: state.category ? [state.category] : [], organization: null, title: null,
    birthday: null, notes: null, photo: null };
  edit(blank, true);
}

// -- routing and the drawer (phones) -------------------------------------------------------
function showPage(name) {
  for (const page of document.querySelectorAll(".page")) page.hidden = page.id !== `page-${name}`;
  for (const link of document.querySelectorAll(".nav a")) {
    if (link.dataset.page === name) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
}

function route() {
  if (!api.signedIn() || $("#app").hidden) return;
  const hash = location.hash || "#/contacts";
  const [, page, id] = /^#\/([a-z]+)\/?(.*)$/.exec(hash) || [null, "contacts", ""];
  closeDrawer();
  if (page === "duplicates") {
    showPage("duplicates");
    showDuplicates(state.book, () => refreshAll().catch(() => {}));
  } else if (page === "transfer") {
    showPage("transfer");
    state.refreshExport();
  } else if (page === "trash") {
    showPage("trash");
    showTrash(state.book, () => refreshAll().catch(() => {}));
  } else if (page === "device") {
    showPage("device");
    showDevice(state.book);
  } else if (page === "sources") {
    showPage("sources");
    showSources();
  } else {
    showPage("contacts");
    if (id) {
      const decoded = decodeURIComponent(id);
      if (!state.contact || state.contact.id !== decoded || !state.editing) openContact(decoded);
    } else if (!state.editing) {
      document.body.classList.remove("showing-detail");
      state.list.setActive(null);
    }
  }
}

function openDrawer() {
  document.body.classList.add("drawer-open");
  $("#menu-toggle").setAttribute("aria-expanded", "true");
  $("#scrim").hidden = false;
  const first = $("#sidebar a, #sidebar button");
  if (first) first.focus();
}

function closeDrawer() {
  if (!document.body.classList.contains("drawer-open")) return;
  document.body.classList.remove("drawer-open");
  $("#menu-toggle").setAttribute("aria-expanded", "false");
  $("#scrim").hidden = true;
}

function init() {
  api.whenUnauthorized(expired);
  $("#signin-form").addEventListener("submit", signIn);
  $("#signout").addEventListener("click", signOut);
  $("#search").addEventListener("input", searchTyped);
  $("#search").addEventListener("keydown", (event) => {
    if (event.key === "ArrowDown") {
      event.preventDefault();
      state.list.focusRow(0);
    }
  });
  $("#new-category").addEventListener("submit", createCategory);
  $("#rename-category").addEventListener("click", renameCategory);
  $("#delete-category").addEventListener("click", deleteCategory);
  $("#new-contact").addEventListener("click", newContact);
  $("#selection-add").addEventListener("click", () => changeMembers(true));
  $("#selection-remove").addEventListener("click", () => changeMembers(false));
  $("#selection-clear").addEventListener("click", () => state.list.clearSelection());
  $("#menu-toggle").addEventListener("click", () => (document.body.classList.contains("drawer-open")
    ? closeDrawer() : openDrawer()));
  $("#scrim").addEventListener("click", closeDrawer);
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape") closeDrawer();
    if (event.key === "/" && !/input|textarea|select/i.test(document.activeElement.tagName)) {
      event.preventDefault();
      $("#search").focus();
    }
  });
  window.addEventListener("hashchange", route);
  setUpCopyButtons();
  setUpTrashPage(() => state.book, () => state.categories, () => refreshAll().catch(() => {}));
  $("#signin-user").focus();  // credentials are kept in memory only: a reload signs in again
}

init();
