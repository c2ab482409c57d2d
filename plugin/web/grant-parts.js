// Pieces shared by the Devices & apps views (devices.js, tokens.js): a grant's
// one-line description, its list entry with a Revoke button behind a
// confirmation, and the "shown once" box for a new password or token. And of
// the Friends & sharing views (friends.js, shares.js): an invitation's line
// with its buttons, a titled list of them, and answering one.
//
// A grant's name is the person's own text (it may hold markup): it goes into
// the page as text only. Grant ids are [a-z0-9]{8}, so they are safe in ids.

import { request, ApiError } from "./api.js";
import { el, $, ask, toast } from "./ui.js";

export const message = (e) => (e instanceof ApiError ? e.message : String(e));

export function when(iso) {
  if (!iso) return "never";
  return new Date(iso).toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
}

const PROTOCOL_WORDS = { carddav: "CardDAV", api: "JSON API" };

/** "Read-only · book contacts · CardDAV": what a grant may do, in words. */
export function access(grant) {
  const parts = [grant.read_only ? "Read-only" : "Read and write"];
  parts.push(grant.books && grant.books.length ? `book ${grant.books.join(", ")}` : "all books");
  if (grant.kind === "device") {
    parts.push((grant.protocols || ["carddav", "api"]).map((p) => PROTOCOL_WORDS[p] || p).join(" and "));
  }
  if (grant.properties) parts.push(`only ${grant.properties.join(", ")}`);
  return parts.join(" · ");
}

/** "Never used", or when and with which app. */
export function lastUse(grant) {
  if (!grant.last_used) return "never used";
  return `${when(grant.last_used)}${grant.client ? ` with ${grant.client}` : ""}`;
}

/**
 * One grant in a list: its name as a heading, what it may do, when it was made
 * and last used, and Revoke (after a confirmation). `onRevoked` reloads the
 * list; the focus then goes to `afterRevoke()`; Cancel leaves it on the button.
 */
export function grantItem(grant, { what, url, consequence, onRevoked, afterRevoke }) {
  const headingId = `grant-${grant.id}`;
  const button = el("button", { type: "button", class: "danger revoke", "aria-describedby": headingId,
    onclick: async () => {
      const ok = await ask({ title: `Revoke the ${what} ${grant.name}?`, ok: "Revoke", danger: true,
        text: consequence });
      if (!ok) { button.focus(); return; }
      try {
        await request("DELETE", `${url}/${encodeURIComponent(grant.id)}`);
        toast(`Revoked ${grant.name}.`);
        await onRevoked();
        afterRevoke().focus();
      } catch (e) {
        toast(message(e));
        button.focus();
      }
    } }, "Revoke");
  return el("li", { class: "grant card-box", dataset: { id: grant.id } },
    el("div", { class: "grant-head" },
      el("h4", { id: headingId }, grant.name),
      button),
    el("dl", { class: "facts grant-facts" },
      el("dt", {}, "Access"), el("dd", { class: "grant-access" }, access(grant)),
      el("dt", {}, "Created"), el("dd", {}, when(grant.created)),
      el("dt", {}, "Last used"), el("dd", { class: "grant-last-use" }, lastUse(grant))));
}

async function copy(text) {
  try {
    await navigator.clipboard.writeText(text);
    toast("Copied.");
  } catch (e) {
    toast("Select the text and copy it (the browser refused).");
  }
}

/**
 * The box that shows a new secret once: a heading (focused), the secret with a
 * Copy button, more `rows` of facts and whatever else the caller adds; Done removes it.
 */
export function shownOnce({ id, title, label, secret, rows = [], extra = [], onDone }) {
  const headingId = `${id}-heading`;
  const box = el("section", { id, class: "shown-once card-box", "aria-labelledby": headingId },
    el("h4", { id: headingId, tabindex: "-1" }, title),
    el("p", {}, "Shown this once: only its hash is kept, so copy it now. "
      + "If it is lost, revoke it and make a new one."),
    el("dl", { class: "facts" },
      el("dt", {}, label),
      el("dd", {}, el("code", { id: `${id}-secret`, class: "secret" }, secret), " ",
        el("button", { type: "button", class: "quiet", "aria-label": `Copy the ${label.toLowerCase()}`,
          onclick: () => copy(secret) }, "Copy")),
      rows.flatMap(([term, value]) => [el("dt", {}, term), el("dd", {}, value)])),
    ...extra,
    el("button", { type: "button", class: "primary", onclick: () => {
      box.remove();  // the secret leaves the page now, not after the list reloads
      onDone();
    } }, "Done"));
  return box;
}

/** A select of the user's books: every book (the default), or one. */
export function bookSelect(id, books) {
  return el("select", { id, name: "book" },
    el("option", { value: "" }, "All address books"),
    books.map((b) => el("option", { value: b.name }, b.displayname || b.name)));
}

// -- invitations (friends and shares): one line each, in titled lists --------------------------
/** One invitation, friend or share: who (as text), what, and its buttons (described by the line). */
export function entry(item, text, ...buttons) {
  const id = `friend-${item.id}`;
  for (const b of buttons) b.setAttribute("aria-describedby", id);
  return el("li", { class: "friend", dataset: { id: item.id, status: item.status } },
    el("span", { id, class: "friend-text" }, el("strong", {}, item.friend), text),
    el("span", { class: "friend-buttons" }, buttons));
}

export function button(label, onclick, danger = false) {
  return el("button", { type: "button", class: danger ? "danger" : "", onclick }, label);
}

/** A list under a focusable heading (where the focus goes after acting on one of it). */
export function section(id, title, empty, items) {
  return el("section", { id, "aria-labelledby": `${id}-heading` },
    el("h4", { id: `${id}-heading`, tabindex: "-1" }, title),
    items.length ? el("ul", { class: "friend-list" }, items) : el("p", { class: "muted" }, empty));
}

/** Answer, withdraw or end one; say so; `reload` the list, then focus `focus` (a selector). */
export async function actThen(method, url, done, reload, focus) {
  try {
    await request(method, url);
    toast(done);
  } catch (e) {
    toast(message(e));
  }
  await reload();
  $(focus).focus();
}
