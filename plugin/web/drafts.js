// Unsaved edits are never lost: leaving asks, closing the tab warns, a reload brings them back.
//
// While an edit form is open its draft (the form's values, the contact as it
// was opened and its ETag) is kept in this tab's sessionStorage, written as
// the user types: a reload, a crash or a sign-in that expired brings it back
// after signing in again, and saving it then merges with whatever changed on
// the server meanwhile (PATCH with base). Never the password: credentials
// stay in api.js's memory. sessionStorage belongs to this tab only and is
// cleared when the tab closes; signing out and saving or discarding clear it.

import { $ } from "./ui.js";

const KEY = "cardfile.draft";
let current = null;   // {id, dirty(), save(), discard(), snapshot()} of the open form
let timer = null;

/** The open form, for the guard and the draft. */
export function track(form) {
  current = form;
  store();
}

export function untrack() {
  current = null;
  clearTimeout(timer);
  sessionStorage.removeItem(KEY);
}

export const dirty = () => Boolean(current && current.dirty());
export const editing = () => current;

/** Keep the draft, a moment after the last keystroke. */
export function changed() {
  clearTimeout(timer);
  timer = setTimeout(store, 250);
}

function store() {
  if (!current) return;
  if (!current.dirty()) {
    sessionStorage.removeItem(KEY);
    return;
  }
  try {
    sessionStorage.setItem(KEY, JSON.stringify(current.snapshot()));
  } catch (e) { /* storage full or refused: the leave guard still asks */ }
}

/** The draft a reload left for `user`, if any. */
export function saved(user, book) {
  try {
    const draft = JSON.parse(sessionStorage.getItem(KEY) || "null");
    if (draft && draft.user === user && draft.book === book) return draft;
  } catch (e) { /* a damaged draft is dropped */ }
  sessionStorage.removeItem(KEY);
  return null;
}

/** Stop guarding the form but keep its draft (the sign-in expired: it comes back after). */
export function keep() {
  store();
  current = null;
}

export function forget() {
  current = null;
  sessionStorage.removeItem(KEY);
}

/**
 * Before leaving an edited form: Save, Discard or Keep editing. Resolves true
 * when the page may go on (saved or discarded), false to stay.
 */
export async function confirmLeave() {
  if (!dirty()) return true;
  const choice = await askLeave();
  if (choice === "save") return current.save();
  if (choice === "discard") {
    current.discard();
    return true;
  }
  current.focus();
  return false;
}

function askLeave() {
  const dialog = $("#leave-dialog");
  return new Promise((resolve) => {
    const done = (choice) => (event) => {
      if (event) event.preventDefault();
      for (const [id, fn] of handlers) $(id).removeEventListener("click", fn);
      dialog.removeEventListener("cancel", keep);
      if (dialog.open) dialog.close();
      resolve(choice);
    };
    const keep = done("keep");
    const handlers = [["#leave-save", done("save")], ["#leave-discard", done("discard")],
      ["#leave-keep", keep]];
    for (const [id, fn] of handlers) $(id).addEventListener("click", fn);
    dialog.addEventListener("cancel", keep);
    dialog.showModal();
    $("#leave-save").focus();
  });
}

/** The browser's own warning when the tab is closed or reloaded with unsaved changes. */
export function guardUnload() {
  window.addEventListener("beforeunload", (event) => {
    if (!dirty()) return;
    store();
    event.preventDefault();
    event.returnValue = "";
  });
}
