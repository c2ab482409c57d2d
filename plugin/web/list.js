// The contact list: cursor-paged from the API, rendered virtually.
//
// Only the rows in view (plus a margin) exist in the DOM, each at a fixed
// height, so 100,000 contacts scroll like 100. Pages of PAGE contacts are
// fetched with the API's next_cursor as the reader nears the end of what is
// loaded; the scroll height grows page by page. A new search or category
// starts again from the first page; an answer to an older query is dropped.

import { get } from "./api.js";
import { el, avatar, displayName } from "./ui.js";

const ROW = 60;
const PAGE = 200;
const MARGIN = 8;

export class ContactList {
  constructor({ container, spacer, booksUrl, onOpen, onSelection, onCount }) {
    this.container = container;
    this.spacer = spacer;
    this.url = booksUrl;
    this.onOpen = onOpen;
    this.onSelection = onSelection;
    this.onCount = onCount;
    this.items = [];
    this.total = 0;
    this.next = null;
    this.loading = null;
    this.generation = 0;
    this.query = { q: "", category: null };
    this.selected = new Map();
    this.activeId = null;
    this.rendered = new Map();
    container.addEventListener("scroll", () => this.render(), { passive: true });
    new ResizeObserver(() => this.render()).observe(container);
    container.addEventListener("keydown", (event) => this.keydown(event));
  }

  setQuery(query) {
    this.query = { ...this.query, ...query };
    return this.reload();
  }

  async reload() {
    this.generation += 1;
    this.items = [];
    this.total = 0;
    this.next = null;
    this.loading = null;
    this.container.scrollTop = 0;
    for (const node of this.rendered.values()) node.remove();
    this.rendered.clear();
    this.container.setAttribute("aria-busy", "true");
    this.render();
    const params = new URLSearchParams({ limit: String(PAGE), sort: "name",
      fields: "name,emails,phones,photo,categories,etag" });
    if (this.query.q) params.set("q", this.query.q);
    if (this.query.category) params.set("category", this.query.category);
    await this.fetchPage(`${this.url}/contacts?${params}`, this.generation);
  }

  async fetchPage(url, generation) {
    const loading = get(url).then(({ data }) => {
      if (generation !== this.generation) return;
      this.items.push(...data.items);
      this.total = data.total;
      this.next = data.next;
      this.onCount(this.total);
    }).finally(() => {
      if (generation === this.generation) {
        this.loading = null;
        this.container.removeAttribute("aria-busy");
        this.render();
      }
    });
    this.loading = loading;
    return loading;
  }

  loadMore() {
    if (this.next && !this.loading) this.fetchPage(this.next, this.generation).catch(() => {});
  }

  /** Bring ``index`` into view and wait for it to exist. */
  async ensureLoaded(index) {
    while (index >= this.items.length && (this.next || this.loading)) {
      if (this.loading) await this.loading;
      else await this.fetchPage(this.next, this.generation);
    }
  }

  render() {
    const count = this.items.length;
    const pending = this.next || this.loading ? 1 : 0;
    this.spacer.style.height = `${(count + pending) * ROW}px`;
    const top = this.container.scrollTop;
    const height = this.container.clientHeight || 600;
    const first = Math.max(0, Math.floor(top / ROW) - MARGIN);
    const last = Math.min(count - 1, Math.ceil((top + height) / ROW) + MARGIN);
    if (last >= count - MARGIN * 4) this.loadMore();
    const keep = new Set();
    for (let i = first; i <= last; i += 1) {
      const item = this.items[i];
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
    }
    for (const [key, node] of this.rendered) {
      if (!keep.has(key) && !node.contains(document.activeElement)) {
        node.remove();
        this.rendered.delete(key);
      }
    }
    let placeholder = this.container.querySelector(".list-loading");
    if (pending || (!count && this.container.getAttribute("aria-busy"))) {
      if (!placeholder) {
        placeholder = el("div", { class: "list-loading", "aria-hidden": "true" }, "Loading…");
        this.container.append(placeholder);
      }
      placeholder.style.transform = `translateY(${count * ROW}px)`;
    } else if (placeholder) {
      placeholder.remove();
    }
    let empty = this.container.querySelector(".list-empty");
    if (!count && !pending && !this.container.getAttribute("aria-busy")) {
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
    const name = displayName(item);
    const email = item.emails && item.emails[0] ? item.emails[0].value : "";
    const phone = item.phones && item.phones[0] ? item.phones[0].value : "";
    const check = el("input", { type: "checkbox", "aria-label": `Select ${name}`,
      onchange: (event) => this.toggle(item, event.target.checked) });
    const link = el("a", { href: `#/contacts/${encodeURIComponent(item.id)}`, class: "row-link",
      dataset: { index: String(index) } },
    avatar(item),
    el("span", { class: "row-text" },
      el("span", { class: "row-name" }, name),
      el("span", { class: "row-sub" }, [email, phone].filter(Boolean).join(" · ") || " ")));
    const row = el("div", { class: "row", role: "listitem", dataset: { id: item.id } }, check, link);
    row.style.transform = `translateY(${index * ROW}px)`;
    return row;
  }

  toggle(item, on) {
    if (on) this.selected.set(item.id, item);
    else this.selected.delete(item.id);
    this.onSelection(this.selected);
  }

  clearSelection() {
    this.selected.clear();
    this.render();
    this.onSelection(this.selected);
  }

  setActive(id) {
    this.activeId = id;
    this.render();
  }

  /** Up/Down (and Home/End) move between rows; the list scrolls and loads as needed. */
  async keydown(event) {
    const link = event.target.closest && event.target.closest(".row-link");
    if (!link || !["ArrowDown", "ArrowUp", "Home", "End"].includes(event.key)) return;
    event.preventDefault();
    let index = Number(link.dataset.index);
    if (event.key === "ArrowDown") index += 1;
    else if (event.key === "ArrowUp") index -= 1;
    else if (event.key === "Home") index = 0;
    else index = this.items.length - 1;
    await this.focusRow(index);
  }

  async focusRow(index) {
    if (index < 0) return;
    await this.ensureLoaded(index);
    if (index >= this.items.length) return;
    const top = index * ROW;
    if (top < this.container.scrollTop) this.container.scrollTop = top;
    else if (top + ROW > this.container.scrollTop + this.container.clientHeight) {
      this.container.scrollTop = top + ROW - this.container.clientHeight;
    }
    this.render();
    const node = this.rendered.get(`${index}:${this.items[index].id}`);
    if (node) node.querySelector(".row-link").focus();
  }

  /** Replace one contact's row data after an edit (it keeps its place until reload). */
  update(contact) {
    const index = this.items.findIndex((c) => c.id === contact.id);
    if (index < 0) return;
    this.items[index] = contact;
    const key = `${index}:${contact.id}`;
    const node = this.rendered.get(key);
    if (node) {
      node.remove();
      this.rendered.delete(key);
    }
    this.render();
  }
}
