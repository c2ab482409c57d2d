// The way back: the Trash page, restoring the book to a time, a contact's History
// panel, and the banner that reports a mass deletion with a one-click restore.
//
// Every restore is an API call that writes through the server's normal path, so
// phones and other apps get it at their next sync.

import { request, get, ApiError } from "./api.js";
import { el, $, ask, toast } from "./ui.js";

const message = (e) => (e instanceof ApiError ? e.message : String(e));

function when(iso) {
  if (!iso) return "before the history began";
  const date = new Date(iso);
  return date.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "medium" });
}

function who(change) {
  if (!change) return "";
  const via = change.via ? ` (${change.via})` : "";
  return `${when(change.time)} by ${change.user || "someone"} with ${change.client || "an unknown app"}${via}`;
}

function changeList(changes) {
  if (!changes || !changes.length) return null;
  return el("ul", { class: "diff" }, changes.map((c) => {
    if (c.old === null) return el("li", { class: "diff-add" }, el("span", { class: "diff-field" }, c.field), ` added: ${c.new}`);
    if (c.new === null) return el("li", { class: "diff-del" }, el("span", { class: "diff-field" }, c.field), ` removed: ${c.old}`);
    return el("li", { class: "diff-change" }, el("span", { class: "diff-field" }, c.field), `: ${c.old} → ${c.new}`);
  }));
}

// -- a contact's History panel ----------------------------------------------------------
export async function historyPanel(contact, onRestored) {
  const panel = el("section", { class: "history-panel", id: "history-panel", "aria-labelledby": "history-heading" },
    el("h3", { id: "history-heading" }, "History"), el("p", { class: "muted" }, "Loading…"));
  try {
    const { data } = await get(`${contact.url}/history`);
    const items = data.items.map((v) => el("li", { class: "version", dataset: { version: String(v.version) } },
      el("p", { class: "version-head" },
        el("strong", {}, v.current ? "Current version" : "Earlier version"),
        v.made ? ` — ${v.made.action} ${who(v.made)}` : " — as it was when the history began"),
      changeList(v.changes),
      v.replaced ? el("p", { class: "muted" }, `Then ${v.replaced.action} ${who(v.replaced)}`) : null,
      v.restore ? el("button", { type: "button", class: "restore-version", onclick: async (event) => {
        event.target.disabled = true;
        try {
          await request("POST", v.restore);
          toast("That version is the current one again.");
          onRestored();
        } catch (e) {
          event.target.disabled = false;
          toast(message(e));
        }
      } }, "Restore this version") : null));
    panel.replaceChildren(el("h3", { id: "history-heading" }, "History"),
      el("p", { class: "muted" }, `Every change since ${when(data.since)}, newest first.`),
      el("ol", { class: "versions" }, items));
  } catch (e) {
    panel.replaceChildren(el("h3", { id: "history-heading" }, "History"), el("p", { class: "error" }, message(e)));
  }
  return panel;
}

// -- the Trash page ---------------------------------------------------------------------
function preview(contact) {
  const lines = [];
  for (const e of contact.emails || []) lines.push(["Email", e.value]);
  for (const p of contact.phones || []) lines.push(["Phone", p.value]);
  for (const a of contact.addresses || []) lines.push(["Address", [a.street, a.city, a.country].filter(Boolean).join(", ")]);
  if (contact.organization) lines.push(["Organisation", contact.organization]);
  if ((contact.categories || []).length) lines.push(["Categories", contact.categories.join(", ")]);
  if (contact.notes) lines.push(["Notes", contact.notes]);
  return el("dl", { class: "trash-preview" }, lines.flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, v)]));
}

export async function showTrash(book, onChange) {
  const list = $("#trash-list");
  const status = $("#trash-status");
  status.textContent = "Loading…";
  try {
    const { data } = await get(`${book.url}/trash`);
    status.textContent = data.total
      ? `${data.total} deleted contact${data.total === 1 ? "" : "s"}, kept ${data.kept_days} days.`
      : `The trash is empty. Deleted contacts are kept ${data.kept_days} days.`;
    $("#empty-trash").hidden = !data.total;
    list.replaceChildren(...data.items.map((item) => {
      const details = el("div", { class: "trash-details" });
      const row = el("li", { class: "trash-item", dataset: { id: item.id } },
        el("div", { class: "trash-line" },
          el("strong", {}, item.name || item.uid),
          el("span", { class: "muted" }, ` deleted ${who(item.deleted)}`)),
        el("div", { class: "trash-buttons" },
          el("button", { type: "button", class: "quiet", onclick: async (event) => {
            if (details.childElementCount) { details.replaceChildren(); return; }
            try {
              const { data: full } = await get(item.url);
              details.replaceChildren(full.contact ? preview(full.contact) : el("p", {}, "(no text kept)"));
            } catch (e) { toast(message(e)); }
            event.target.blur();
          } }, "Preview"),
          el("button", { type: "button", class: "primary restore-trash", onclick: async () => {
            try {
              await request("POST", item.restore);
              toast(`${item.name || item.uid} is back.`);
              onChange();
              await showTrash(book, onChange);
            } catch (e) { toast(message(e)); }
          } }, "Restore"),
          el("button", { type: "button", class: "danger", onclick: async () => {
            const ok = await ask({ title: `Delete ${item.name || item.uid} for good?`, danger: true,
              ok: "Delete for good", text: "It cannot be restored afterwards, and its earlier versions go too." });
            if (!ok) return;
            try {
              await request("DELETE", item.url);
              await showTrash(book, onChange);
            } catch (e) { toast(message(e)); }
          } }, "Delete for good")),
        details);
      return row;
    }));
  } catch (e) {
    status.textContent = message(e);
  }
}

export function setUpTrashPage(getBook, getCategories, onChange) {
  $("#empty-trash").addEventListener("click", async () => {
    const ok = await ask({ title: "Empty the trash?", danger: true, ok: "Empty trash",
      text: "Every deleted contact goes for good." });
    if (!ok) return;
    try {
      const { data } = await request("DELETE", `${getBook().url}/trash`);
      toast(`${data.purged} contact${data.purged === 1 ? "" : "s"} deleted for good.`);
      await showTrash(getBook(), onChange);
    } catch (e) { toast(message(e)); }
  });
  $("#restore-to-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const value = $("#restore-to-time").value;
    if (!value) return;
    const time = new Date(value).toISOString();  // the browser's local time, sent as UTC
    const category = $("#restore-to-category").value || null;
    await restoreTo(getBook(), time, category, $("#restore-to-report"), onChange);
  });
  $("#restore-to-category").addEventListener("focus", () => {
    const select = $("#restore-to-category");
    const current = select.value;
    select.replaceChildren(el("option", { value: "" }, "The whole book"),
      ...getCategories().map((c) => el("option", { value: c.name }, `Only ${c.name}`)));
    select.value = current;
  });
}

/** Dry run, say what would change, and apply on confirmation. */
export async function restoreTo(book, time, category, report, onChange) {
  const body = { time, category, dry_run: true };
  try {
    const { data: plan } = await request("POST", `${book.url}/restore-to`, { body });
    const summary = `added ${plan.added}, changed ${plan.changed}, deleted ${plan.deleted}`;
    if (report) report.textContent = `Back to ${when(plan.time)}${category ? ` (${category})` : ""}: would be ${summary}.`;
    if (!plan.added && !plan.changed && !plan.deleted) {
      toast(`Nothing changed since ${when(plan.time)}.`);
      return false;
    }
    const ok = await ask({ title: `Restore to ${when(plan.time)}?`, ok: "Restore",
      text: `Contacts ${summary} to be as they were then${category ? ` (only ${category})` : ""}. Every device gets these changes at its next sync, and this too can be undone.` });
    if (!ok) return false;
    const { data: done } = await request("POST", `${book.url}/restore-to`, { body: { ...body, dry_run: false } });
    const text = `Restored: added ${done.added}, changed ${done.changed}, deleted ${done.deleted}.`;
    if (report) report.textContent = text;
    toast(text);
    onChange();
    return true;
  } catch (e) {
    if (report) report.textContent = message(e);
    else toast(message(e));
    return false;
  }
}

// -- the mass-change banner ----------------------------------------------------------------
export async function showAlerts(book, onChange) {
  const box = $("#alerts");
  let items = [];
  try {
    ({ data: { items } } = await get(`${book.url}/alerts`));
  } catch (e) {
    box.hidden = true;  // a read-only login sees no history, and no alerts
    return;
  }
  box.hidden = !items.length;
  box.replaceChildren(...items.map((a) => el("div", { class: "alert", role: "alert", dataset: { id: String(a.id) } },
    el("p", {}, el("strong", {}, "Many contacts changed at once. "),
      `${a.client || "An app"} (${a.user}) deleted ${a.deleted}${a.emptied ? ` and emptied ${a.emptied}` : ""} of ${a.book_size} contacts around ${when(a.time)}. `,
      "If that was not you, put the book back as it was just before."),
    el("div", { class: "alert-buttons" },
      el("button", { type: "button", class: "primary restore-alert", onclick: async () => {
        if (await restoreTo(book, a.restore_to, null, null, onChange)) {
          await request("DELETE", a.url).catch(() => {});
          await showAlerts(book, onChange);
        }
      } }, `Restore to ${when(a.restore_to)}`),
      el("button", { type: "button", class: "quiet", onclick: async () => {
        try {
          await request("DELETE", a.url);
          await showAlerts(book, onChange);
        } catch (e) { toast(message(e)); }
      } }, "It was me: dismiss")))));
}
