// One contact: the readable card, photos, delete with undo (the edit form is form.js).
//
// A new photo is written by the API's documented whole-card way: GET
// text/vcard, replace PHOTO, PUT with If-Match.

import { request, get, ApiError } from "./api.js";
import { el, avatar, displayName, typeLabel, toast } from "./ui.js";
import { IM_SERVICES } from "./form.js";

let uid = 0;
const nextId = (prefix) => `${prefix}-${(uid += 1)}`;

function section(title, ...content) {
  const items = content.flat().filter(Boolean);
  if (!items.length) return null;
  return el("section", { class: "facts-section" }, el("h3", {}, title), ...items);
}

function formatAddress(a) {
  const cityLine = [a.postal_code, a.city].filter(Boolean).join(" ");
  return [a.street, a.extended, a.po_box && `PO Box ${a.po_box}`, cityLine, a.region, a.country]
    .filter(Boolean).flatMap((line) => line.split("\n")).filter((line) => line.trim());
}

function formatBirthday(value) {
  const m = /^(\d{4}|--)-?(\d{2})-?(\d{2})$/.exec(value || "");
  if (!m) return value;
  const year = m[1] === "--" ? 2000 : Number(m[1]);
  const date = new Date(Date.UTC(year, Number(m[2]) - 1, Number(m[3])));
  const options = { day: "numeric", month: "long", timeZone: "UTC" };
  if (m[1] !== "--") options.year = "numeric";
  return Number.isNaN(date.getTime()) ? value : date.toLocaleDateString(undefined, options);
}

/**
 * A mailto: link to the address alone. Anything from "?" on would be header
 * fields (bcc=, body=, a %0a-smuggled header), so it is dropped; the address
 * itself is percent-encoded, "@" kept readable.
 */
export function mailtoHref(value) {
  const address = String(value || "").split("?")[0].trim();
  return "mailto:" + encodeURIComponent(address).replace(/%40/g, "@");
}

/** What an entry is called: its own label (Apple's), else its kinds. */
function entryLabel(entry) {
  return entry.label || typeLabel(entry.type);
}

/** An instant-messaging URI as a person reads it: "Skype: alice". */
function imText(value) {
  const m = /^([a-z][a-z0-9+.-]*):(.*)$/i.exec(value || "");
  const service = m && IM_SERVICES.find(([scheme]) => scheme && scheme === m[1].toLowerCase());
  return service ? `${service[1]}: ${m[2]}` : value;
}

/**
 * The readable card. `actions`: {edit, remove, addCategory, removeCategory}; one left
 * out (a book shared read-only, or without its categories) leaves its controls out.
 */
export function renderView(contact, categories, actions) {
  const name = displayName(contact);
  const sub = [contact.title, contact.organization].filter(Boolean).join(", ");
  const spoken = [contact.phonetic_given, contact.phonetic_family].filter(Boolean).join(" ");
  const emails = (contact.emails || []).map((e) => el("li", {},
    el("a", { href: mailtoHref(e.value) }, e.value),
    entryLabel(e) && el("span", { class: "type" }, entryLabel(e))));
  const phones = (contact.phones || []).map((p) => el("li", {},
    el("a", { href: `tel:${p.value.replace(/[^\d+#*,;]/g, "")}` }, p.value),
    entryLabel(p) && el("span", { class: "type" }, entryLabel(p))));
  const urls = (contact.urls || []).map((u) => {
    const safe = /^https?:\/\//i.test(u.value) ? u.value : null;
    return el("li", {}, safe ? el("a", { href: safe, rel: "noopener noreferrer", target: "_blank" },
      u.value) : u.value);
  });
  const addresses = (contact.addresses || []).map((a) => el("li", {},
    el("address", {}, ...formatAddress(a).flatMap((line, i) => (i ? [el("br"), line] : [line]))),
    entryLabel(a) && el("span", { class: "type" }, entryLabel(a))));
  const labelled = (list, text) => (list || []).map((e) => el("li", {}, el("span", {}, text(e.value)),
    entryLabel(e) && el("span", { class: "type" }, entryLabel(e))));
  const ims = labelled(contact.ims, imText);
  const related = labelled(contact.related, (v) => v);
  const dates = labelled(contact.dates, formatBirthday);
  const memberOf = contact.categories || [];
  const others = categories.filter((c) => !memberOf.some((m) => m.toLowerCase() === c.name.toLowerCase()));
  const pickId = nextId("add-category");
  const catChips = memberOf.map((c) => el("li", { class: "chip" }, el("span", {}, c),
    actions.removeCategory && el("button", { type: "button", class: "chip-remove", "aria-label": `Remove from ${c}`,
      onclick: () => actions.removeCategory(c) }, "×")));
  const addForm = others.length && actions.addCategory ? el("form", { class: "inline-form add-category", onsubmit: (event) => {
    event.preventDefault();
    const value = event.target.elements.category.value;
    if (value) actions.addCategory(value);
  } },
  el("label", { for: pickId, class: "visually-hidden" }, "Category to add this contact to"),
  el("select", { id: pickId, name: "category" },
    el("option", { value: "" }, "Add to category…"),
    ...others.map((c) => el("option", { value: c.name }, c.name))),
  el("button", { type: "submit" }, "Add")) : null;

  return el("article", { class: "contact-card", "aria-labelledby": "contact-name" },
    el("div", { class: "detail-actions" },
      el("button", { type: "button", class: "quiet only-narrow back", onclick: actions.back }, "‹ Back"),
      actions.edit && el("button", { type: "button", class: "primary", id: "edit-contact", onclick: actions.edit }, "Edit"),
      actions.remove && el("button", { type: "button", class: "danger", id: "delete-contact", onclick: actions.remove }, "Delete")),
    el("header", { class: "contact-head" }, avatar(contact, "large"),
      el("div", {}, el("h2", { id: "contact-name", tabindex: "-1" }, name),
        spoken && el("p", { class: "sub phonetic" }, `Say: ${spoken}`),
        contact.nickname && el("p", { class: "sub" }, `Also called ${contact.nickname}`),
        sub && el("p", { class: "sub" }, sub))),
    section("Email", emails.length ? el("ul", { class: "values" }, emails) : null),
    section("Phone", phones.length ? el("ul", { class: "values" }, phones) : null),
    section("Address", addresses.length ? el("ul", { class: "values" }, addresses) : null),
    section("Birthday", contact.birthday ? el("p", {}, formatBirthday(contact.birthday)) : null),
    section("Dates", dates.length ? el("ul", { class: "values" }, dates) : null),
    section("Instant messaging", ims.length ? el("ul", { class: "values" }, ims) : null),
    section("Related people", related.length ? el("ul", { class: "values" }, related) : null),
    section("Web", urls.length ? el("ul", { class: "values" }, urls) : null),
    section("Notes", contact.notes ? el("p", { class: "notes" }, contact.notes) : null),
    el("section", { class: "facts-section" }, el("h3", {}, "Categories"),
      catChips.length ? el("ul", { class: "chips" }, catChips) : el("p", { class: "muted" }, "In no category."),
      addForm));
}

// -- photos: cropped and resized in the browser, written into the card with a whole-card PUT
/** The largest photo side written: enough for a phone's full-screen contact photo. */
const PHOTO_SIDE = 512;

/**
 * The picture's square `crop` ({x, y, size} in its pixels; the middle square when
 * none) as base64 JPEG of at most 512 px, or an Error a person can read.
 */
export async function shrink(file, crop = null) {
  let bitmap;
  try {
    bitmap = await createImageBitmap(file);
  } catch (e) {
    throw new Error(`${file.name} is not a picture this browser can read; choose a JPEG or PNG.`);
  }
  const side = Math.min(bitmap.width, bitmap.height);
  const square = crop || { x: (bitmap.width - side) / 2, y: (bitmap.height - side) / 2, size: side };
  const canvas = document.createElement("canvas");
  canvas.width = canvas.height = Math.max(1, Math.round(Math.min(PHOTO_SIDE, square.size)));
  canvas.getContext("2d").drawImage(bitmap, square.x, square.y, square.size, square.size,
    0, 0, canvas.width, canvas.height);
  const blob = await new Promise((resolve) => canvas.toBlob(resolve, "image/jpeg", 0.85));
  const bytes = new Uint8Array(await blob.arrayBuffer());
  let text = "";
  for (let i = 0; i < bytes.length; i += 0x8000) text += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(text);
}

function fold(line) {
  const out = [];
  for (let i = 0; i < line.length; i += 74) out.push((i ? " " : "") + line.slice(i, i + 74));
  return out.join("\r\n");
}

export async function writePhoto(contact, data) {
  const { data: card } = await get(contact.url, { as: "text", headers: { Accept: "text/vcard" } });
  const lines = card.replace(/\r?\n[ \t]/g, "").split(/\r?\n/).filter((l) => l !== "");
  const version = (lines.find((l) => /^VERSION:/i.test(l)) || "VERSION:3.0").split(":")[1].trim();
  const photo = version.startsWith("4")
    ? `PHOTO:data:image/jpeg;base64,${data}` : `PHOTO;ENCODING=b;TYPE=JPEG:${data}`;
  const kept = lines.filter((l) => !/^([A-Za-z0-9-]+\.)?PHOTO[;:]/i.test(l));
  const end = kept.findIndex((l) => /^END:VCARD/i.test(l));
  kept.splice(end, 0, photo);
  const text = kept.map(fold).join("\r\n") + "\r\n";
  return request("PUT", contact.url, { body: text, headers: {
    // The ETag the page last saw: a change made elsewhere meanwhile is refused (412).
    "Content-Type": "text/vcard; charset=utf-8", "If-Match": contact.etag } });
}

/** Delete with a few seconds to undo: the whole card is kept and re-created on Undo. */
export async function deleteWithUndo(contact, booksUrl, onDone) {
  const { data: card } = await get(contact.url, { as: "text", headers: { Accept: "text/vcard" } });
  await request("DELETE", contact.url, { headers: { "If-Match": contact.etag } });
  onDone();
  toast(`Deleted ${displayName(contact)}.`, {
    action: "Undo", ms: 10000, onAction: async () => {
      try {
        // From the trash: the same card at the same address, so devices see it come back.
        // A shared book has no trash of its own (403): the card is written again.
        await request("POST", `${booksUrl}/trash/${encodeURIComponent(contact.id)}/restore`)
          .catch((e) => (e.status === 404 || e.status === 403 ? request("POST", `${booksUrl}/contacts`, { body: card,
            headers: { "Content-Type": "text/vcard; charset=utf-8" } }) : Promise.reject(e)));
        toast(`${displayName(contact)} is back.`);
        onDone(contact.id);
      } catch (e) {
        toast(e instanceof ApiError ? e.message : String(e));
      }
    },
  });
}
