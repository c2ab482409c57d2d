// The contact list: the whole book's height from the first answer, rows loaded by position.
//
// The API says how many contacts match (total) and serves any position
// (offset), so the list is as tall as the whole book from the start: the
// scrollbar covers every contact, and dragging it, or a letter of the A-Z
// index, loads just the rows in view (blocks of BLOCK). Only the rows in view
// (plus a margin) exist in the DOM, each at a fixed height, so 100,000
// contacts scroll like 100. A new search, category or order starts again; an
// answer to an older query is dropped.
//
// Keyboard: the list is one Tab stop (roving tabindex: only the current row's
// link is tabbable). Up/Down, Page Up/Down, Home/End move; Space selects;
// Shift+Up/Down extends the selection; Enter opens the contact.

import { get } from "./api.js";
import { el, avatar, displayName } from "./ui.js";

const ROW = 60;
const BLOCK = 100;
const MARGIN = 8;
const FIELDS = "name,given,family,emails,phones,photo,categories,etag";

export class ContactList {
  constructor({ container, spacer, booksUrl, onOpen, onSelection, onCount, onLetters }) {
    this.container = container;
    this.spacer = spacer;
    this.url = booksUrl;
    this.onOpen = onOpen;
    this.onSelection = onSelection;
    this.onCount = onCount;
    this.onLetters = onLetters || (() => {});
    this.items = [];
    this.total = 0;
    this.blocks = new Map();
    this.generation = 0;
    this.query = { q: "", category: null, sort: "name" };
    this.selected = new Map();
    this.anchor = null;          // where a shift-click or Shift+arrow range starts
    this.activeId = null;
    this.current = 0;            // the row that holds the list's one Tab stop
    this.rendered = new Map();
    this.ready = Promise.resolve();
    container.addEventListener("scroll", () => this.render(), { passive: true });
    new ResizeObserver(() => this.render()).observe(container);
    container.addEventListener("keydown", (event) => this.keydown(event));
    container.addEventListener("focusin", (event) => {
      const link = event.target.closest && event.target.closest(".row-link");
      if (link) this.setCurrent(Number(link.dataset.index));
    });
  }

  setQuery(query) {
    this.query = { ...this.query, ...query };
    return this.reload();
  }

  async reload() {
    this.generation += 1;
    this.items = [];
    this.total = 0;
    this.letterIndex = [];
    this.blocks.clear();
    this.current = 0;
    this.container.scrollTop = 0;
    for (const node of this.rendered.values()) node.remove();
    this.rendered.clear();
    this.container.setAttribute("aria-busy", "true");
    this.render();
    this.ready = this.fetchBlock(0, this.generation);
    this.loadLetters(this.generation);
    await this.ready;
  }

  params() {
    const params = new URLSearchParams({ sort: this.query.sort });
    if (this.query.q) params.set("q", this.query.q);
    if (this.query.category) params.set("category", this.query.category);
    return params;
  }

  /** Rows BLOCK*b .. BLOCK*(b+1)-1, once; resolves when they are in. */
  fetchBlock(b, generation = this.generation) {
    if (this.blocks.has(b)) return this.blocks.get(b);
    const params = this.params();
    params.set("offset", String(b * BLOCK));
    params.set("limit", String(BLOCK));
    params.set("fields", FIELDS);
    const loading = get(`${this.url}/contacts?${params}`).then(({ data }) => {
      if (generation !== this.generation) return;
      data.items.forEach((item, i) => { this.items[b * BLOCK + i] = item; });
      const changed = data.total !== this.total;
      this.total = data.total;
      if (changed || b === 0) this.onCount(this.total);
    }).catch((e) => {
      // Tried again a little later, not at once: a server that answers errors
      // must not be asked again on every scroll event.
      if (generation === this.generation) setTimeout(() => this.blocks.delete(b), 3000);
      throw e;
    }).finally(() => {
      if (generation === this.generation) {
        this.container.removeAttribute("aria-busy");
        this.render();
      }
    });
    this.blocks.set(b, loading);
    return loading;
  }

  async loadLetters(generation) {
    if (this.query.sort !== "name" && this.query.sort !== "family") return;
    const params = this.params();
    try {
      const { data } = await get(`${this.url.replace(/\/$/, "")}/letters?${params}`);
      if (generation !== this.generation) return;
      this.letterIndex = data.items;
      this.onLetters(data.items);
    } catch (e) { /* the index is a convenience: the list works without it */ }
  }

  /** Make sure row ``index`` is loaded. */
  async ensureLoaded(index) {
    await this.ready;
    if (index < 0 || index >= this.total) return;
    if (!this.items[index]) await this.fetchBlock(Math.floor(index / BLOCK));
  }

  render() {
    const count = this.total;
    this.spacer.style.height = `${count * ROW}px`;
    const top = this.container.scrollTop;
    const height = this.container.clientHeight || 600;
    const first = Math.max(0, Math.floor(top / ROW) - MARGIN);
    const last = Math.min(count - 1, Math.ceil((top + height) / ROW) + MARGIN);
    const keep = new Set();
    const wanted = [];
    for (let i = first; i <= last; i += 1) wanted.push(i);
    if (this.current < count && (this.current < first || this.current > last)) wanted.push(this.current);
    for (const i of wanted) {
      const item = this.items[i];
      if (!item) {
        this.fetchBlock(Math.floor(i / BLOCK)).catch(() => {});
        const key = `${i}:`;
        keep.add(key);
        if (!this.rendered.has(key)) {
          const placeholder = el("div", { class: "row placeholder", "aria-hidden": "true" },
            el("span", { class: "row-text muted" }, "Loading…"));
          placeholder.style.transform = `translateY(${i * ROW}px)`;
          this.rendered.set(key, placeholder);
          this.container.append(placeholder);
        }
        continue;
      }
      const key = `${i}:${item.id}`;
      keep.add(key);
      if (!this.rendered.has(key)) {
        const row = this.row(item, i);
        this.rendered.set(key, row);
        this.container.append(row);
      }
      const node = this.rendered.get(key);
      node.classList.toggle("active", item.id === this.activeId);
      node.querySelector("input").checked = this.selected.has(item.id);
      node.querySelector(".row-link").tabIndex = i === this.current ? 0 : -1;
    }
    for (const [key, node] of this.rendered) {
      if (!keep.has(key) && !node.contains(document.activeElement)) {
        node.remove();
        this.rendered.delete(key);
      }
    }
    let empty = this.container.querySelector(".list-empty");
    if (!count && !this.container.getAttribute("aria-busy")) {
      if (!empty) {
        empty = el("p", { class: "list-empty" }, this.query.q
          ? "No contact matches your search." : "No contacts here yet.");
        this.container.append(empty);
      }
    } else if (empty) {
      empty.remove();
    }
  }

  row(item, index) {
    const name = this.rowName(item);
    const email = item.emails && item.emails[0] ? item.emails[0].value : "";
    const phone = item.phones && item.phones[0] ? item.phones[0].value : "";
    const check = el("input", { type: "checkbox", tabindex: "-1", "aria-label": `Select ${displayName(item)}`,
      onclick: (event) => this.clicked(item, index, event) });
    const link = el("a", { href: `#/contacts/${encodeURIComponent(item.id)}`, class: "row-link",
      tabindex: index === this.current ? "0" : "-1", dataset: { index: String(index) },
      onclick: (event) => {
        if (event.shiftKey || event.ctrlKey || event.metaKey) {
          event.preventDefault();
          this.clicked(item, index, event);
        }
      } },
    avatar(item),
    el("span", { class: "row-text" },
      el("span", { class: "row-name" }, name),
      el("span", { class: "row-sub" }, [email, phone].filter(Boolean).join(" · ") || " ")));
    const row = el("div", { class: "row", role: "listitem", "aria-setsize": String(this.total),
      "aria-posinset": String(index + 1), dataset: { id: item.id } }, check, link);
    row.style.transform = `translateY(${index * ROW}px)`;
    return row;
  }

  /** By last name, the list shows "Family, Given" so the order is visible. */
  rowName(item) {
    if (this.query.sort === "family" && item.family) {
      return item.given ? `${item.family}, ${item.given}` : item.family;
    }
    return displayName(item);
  }

  /** A checkbox click, or a shift/ctrl-click on a row: toggle, or select a range. */
  clicked(item, index, event) {
    if (event.shiftKey && this.anchor !== null) {
      if (event.target.type === "checkbox") event.preventDefault();
      this.selectRange(this.anchor, index);
      return;
    }
    const on = event.target.type === "checkbox" ? event.target.checked : !this.selected.has(item.id);
    this.toggle(item, on);
    this.anchor = index;
  }

  async selectRange(from, to) {
    const [a, b] = from < to ? [from, to] : [to, from];
    for (let i = a; i <= b; i += 1) await this.ensureLoaded(i);
    for (let i = a; i <= b; i += 1) if (this.items[i]) this.selected.set(this.items[i].id, this.items[i]);
    this.render();
    this.onSelection(this.selected);
  }

  toggle(item, on) {
    if (on) this.selected.set(item.id, item);
    else this.selected.delete(item.id);
    this.render();
    this.onSelection(this.selected);
  }

  /** Every contact of the list (all positions), for "Select all": ids from the index
   *  alone, 1,000 a request, so 100,000 contacts take 100 quick requests. */
  async selectAll() {
    await this.ready;
    const generation = this.generation;
    let url = `${this.url}/contacts?${this.params()}&limit=1000&fields=name,etag`;
    const found = [];
    while (url) {
      const { data } = await get(url);
      if (generation !== this.generation) return;
      found.push(...data.items);
      url = data.next;
    }
    for (const item of found) this.selected.set(item.id, this.selected.get(item.id) || item);
    this.render();
    this.onSelection(this.selected);
  }

  clearSelection() {
    this.selected.clear();
    this.anchor = null;
    this.render();
    this.onSelection(this.selected);
  }

  setActive(id) {
    this.activeId = id;
    const index = id === null ? -1 : this.items.findIndex((c) => c && c.id === id);
    if (index >= 0) this.current = index;
    this.render();
  }

  setCurrent(index) {
    if (index === this.current) return;
    this.current = index;
    for (const node of this.rendered.values()) {
      const link = node.querySelector(".row-link");
      if (link) link.tabIndex = Number(link.dataset.index) === index ? 0 : -1;
    }
  }

  async keydown(event) {
    const link = event.target.closest && event.target.closest(".row-link");
    if (!link) return;
    const index = Number(link.dataset.index);
    const page = Math.max(1, Math.floor(this.container.clientHeight / ROW) - 1);
    const moves = { ArrowDown: 1, ArrowUp: -1, PageDown: page, PageUp: -page };
    let target = null;
    if (event.key in moves) target = index + moves[event.key];
    else if (event.key === "Home") target = 0;
    else if (event.key === "End") target = this.total - 1;
    else if (event.key === " ") {
      event.preventDefault();
      const item = this.items[index];
      if (item) {
        this.toggle(item, !this.selected.has(item.id));
        this.anchor = index;
      }
      return;
    } else if (/^[a-z#]$/i.test(event.key) && !event.ctrlKey && !event.metaKey && !event.altKey) {
      // A letter typed in the list jumps to it: the A-Z index from the keyboard.
      const found = (this.letterIndex || []).find((l) => l.letter === event.key.toUpperCase() && l.count);
      if (found) {
        event.preventDefault();
        await this.focusRow(found.offset, { top: true });
      }
      return;
    } else if (event.key === "Enter") {
      event.preventDefault();
      const item = this.items[index];
      if (item) this.onOpen(item.id, { focus: true });
      return;
    } else {
      return;
    }
    event.preventDefault();
    target = Math.max(0, Math.min(this.total - 1, target));
    if (event.shiftKey && (event.key === "ArrowDown" || event.key === "ArrowUp")) {
      if (this.anchor === null) this.anchor = index;
      await this.selectRange(this.anchor, target);
    }
    await this.focusRow(target);
  }

  /** Scroll ``index`` into view (loading it) and give it the focus. */
  async focusRow(index, { top = false } = {}) {
    if (index < 0) return;
    await this.ensureLoaded(index);
    if (index >= this.total) return;
    const y = index * ROW;
    if (top || y < this.container.scrollTop) this.container.scrollTop = y;
    else if (y + ROW > this.container.scrollTop + this.container.clientHeight) {
      this.container.scrollTop = y + ROW - this.container.clientHeight;
    }
    this.setCurrent(index);
    this.render();
    const item = this.items[index];
    const node = item && this.rendered.get(`${index}:${item.id}`);
    if (node) node.querySelector(".row-link").focus();
  }

  /** Give the focus back to the list: to the open contact's row, else the current one. */
  focusCurrent() {
    const index = this.activeId === null ? -1 : this.items.findIndex((c) => c && c.id === this.activeId);
    return this.focusRow(index >= 0 ? index : Math.min(this.current, Math.max(0, this.total - 1)));
  }

  /** Replace one contact's row data after an edit (it keeps its place until reload). */
  update(contact) {
    const index = this.items.findIndex((c) => c && c.id === contact.id);
    if (index < 0) return;
    this.items[index] = contact;
    const key = `${index}:${contact.id}`;
    const node = this.rendered.get(key);
    if (node && !node.contains(document.activeElement)) {
      node.remove();
      this.rendered.delete(key);
    }
    this.render();
  }
}
