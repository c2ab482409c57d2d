// Several contacts at once: into or out of a category, exported, deleted (with undo).
//
// The bar shows only while contacts are selected (ticked, shift-clicked for a
// range, Space or Shift+arrows in the list, or Select all). Its category
// choice starts empty, so nothing is filed anywhere by accident.

import { request, get, ApiError } from "./api.js";
import { el, $, ask, toast } from "./ui.js";

const message = (e) => (e instanceof ApiError ? e.message : String(e));

/** Run `task` over `items`, a few at a time. */
async function each(items, task, width = 6) {
  const results = [];
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next;
      next += 1;
      results[i] = await task(items[i]);
    }
  };
  await Promise.all(Array.from({ length: Math.min(width, items.length) }, worker));
  return results;
}

export function setUpSelection({ list, book, categories, categoryUrl, refresh }) {
  const plural = (n) => `${n} contact${n === 1 ? "" : "s"}`;

  function update(selected) {
    const n = selected.size;
    $("#selection-bar").hidden = !n;
    $("#selection-count").textContent = n ? `${n} selected` : "";
    const select = $("#selection-category");
    const current = select.value;
    select.replaceChildren(el("option", { value: "" }, "Choose a category…"),
      ...categories().map((c) => el("option", { value: c.name }, c.name)));
    select.value = categories().some((c) => c.name === current) ? current : "";
    const chosen = Boolean(select.value);
    $("#selection-add").disabled = !chosen;
    $("#selection-remove").disabled = !chosen;
  }

  async function members(add) {
    const name = $("#selection-category").value;
    const ids = [...list.selected.keys()];
    if (!name || !ids.length) return;
    try {
      if (add) {
        await request("POST", `${categoryUrl(name)}/members`, { body: { ids } });
      } else {
        await request("DELETE", `${categoryUrl(name)}/members`, { body: { ids } });
      }
      toast(`${add ? "Added" : "Removed"} ${plural(ids.length)} ${add ? "to" : "from"} ${name}.`);
      list.clearSelection();
      await refresh();
    } catch (e) {
      toast(message(e));
    }
  }

  async function cards(items) {
    return each(items, async (item) => (await get(item.url || `${book().url}/contacts/${encodeURIComponent(item.id)}`,
      { as: "text", headers: { Accept: "text/vcard" } })).data);
  }

  async function exportSelected() {
    const items = [...list.selected.values()];
    try {
      const texts = await cards(items);
      const blob = new Blob(texts.map((t) => (t.endsWith("\n") ? t : `${t}\r\n`)), { type: "text/vcard" });
      const url = URL.createObjectURL(blob);
      const link = el("a", { href: url, download: "selected-contacts.vcf", class: "visually-hidden" }, "download");
      document.body.append(link);
      link.click();
      link.remove();
      setTimeout(() => URL.revokeObjectURL(url), 60000);
      toast(`Exported ${plural(items.length)} to selected-contacts.vcf.`);
    } catch (e) {
      toast(message(e));
    }
  }

  async function deleteSelected() {
    const items = [...list.selected.values()];
    const ok = await ask({ title: `Delete ${plural(items.length)}?`, ok: "Delete", danger: true,
      text: "You can undo this for a few seconds afterwards." });
    if (!ok) {
      $("#selection-delete").focus();
      return;
    }
    let texts;
    try {
      texts = await cards(items);
      await each(items, (item) => request("DELETE", `${book().url}/contacts/${encodeURIComponent(item.id)}`,
        { headers: item.etag ? { "If-Match": item.etag } : {} }));
    } catch (e) {
      toast(`Not every contact was deleted: ${message(e)}`);
      await refresh();
      return;
    }
    list.clearSelection();
    await refresh();
    list.focusCurrent();
    toast(`Deleted ${plural(items.length)}.`, { action: "Undo", ms: 10000, onAction: async () => {
      try {
        await each(texts, (text) => request("POST", `${book().url}/contacts`, { body: text,
          headers: { "Content-Type": "text/vcard; charset=utf-8" } }));
        toast(`${plural(items.length)} back.`);
      } catch (e) {
        toast(message(e));
      }
      await refresh();
    } });
  }

  $("#selection-category").addEventListener("change", () => update(list.selected));
  $("#selection-add").addEventListener("click", () => members(true));
  $("#selection-remove").addEventListener("click", () => members(false));
  $("#selection-export").addEventListener("click", exportSelected);
  $("#selection-delete").addEventListener("click", deleteSelected);
  $("#selection-clear").addEventListener("click", () => {
    list.clearSelection();
    list.focusCurrent();
  });
  $("#select-all").addEventListener("click", async () => {
    await list.selectAll();
    toast(`Selected all ${plural(list.selected.size)}.`);
  });
  return update;
}
