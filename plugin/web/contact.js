// One contact: the readable card, the edit form, saving with If-Match, delete with undo.
//
// Saving sends a JSON merge patch (PATCH) of only the fields the form changed,
// with If-Match: the ETag read when the contact was opened. The API keeps
// everything the form does not show (photos, X- properties, labels). A 412
// means a phone or another window changed the contact meanwhile: nothing is
// overwritten, and the page offers to reload it. A new photo is written by the
// API's documented whole-card way: GET text/vcard, replace PHOTO, PUT with If-Match.

import { request, get, ApiError } from "./api.js";
import { el, avatar, displayName, typeLabel, toast } from "./ui.js";

const EMAIL_TYPES = ["", "home", "work", "other"];
const PHONE_TYPES = ["", "cell", "home", "work", "main", "fax", "pager", "other"];
const URL_TYPES = ["", "home", "work", "other"];
const ADDRESS_TYPES = ["", "home", "work", "other"];
const ADDRESS_PARTS = [["street", "Street"], ["extended", "Extended address"],
  ["po_box", "PO box"], ["city", "City"], ["region", "Region"],
  ["postal_code", "Postal code"], ["country", "Country"]];
export const TEXT_FIELDS = ["name", "given", "family", "organization", "title", "birthday", "notes"];
const LIST_FIELDS = ["emails", "phones", "urls", "addresses", "categories"];
const BIRTHDAY = "(\\d{4}|--)-?\\d{2}-?\\d{2}|\\d{4}-\\d{2}|---\\d{2}";

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
    .filter(Boolean);
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

/** The readable card. `actions`: {edit, remove, addCategory, removeCategory}. */
export function renderView(contact, categories, actions) {
  const name = displayName(contact);
  const sub = [contact.title, contact.organization].filter(Boolean).join(", ");
  const emails = (contact.emails || []).map((e) => el("li", {},
    el("a", { href: mailtoHref(e.value) }, e.value),
    typeLabel(e.type) && el("span", { class: "type" }, typeLabel(e.type))));
  const phones = (contact.phones || []).map((p) => el("li", {},
    el("a", { href: `tel:${p.value.replace(/[^\d+#*,;]/g, "")}` }, p.value),
    typeLabel(p.type) && el("span", { class: "type" }, typeLabel(p.type))));
  const urls = (contact.urls || []).map((u) => {
    const safe = /^https?:\/\//i.test(u.value) ? u.value : null;
    return el("li", {}, safe ? el("a", { href: safe, rel: "noopener noreferrer", target: "_blank" },
      u.value) : u.value);
  });
  const addresses = (contact.addresses || []).map((a) => el("li", {},
    el("address", {}, ...formatAddress(a).flatMap((line, i) => (i ? [el("br"), line] : [line]))),
    typeLabel(a.type) && el("span", { class: "type" }, typeLabel(a.type))));
  const memberOf = contact.categories || [];
  const others = categories.filter((c) => !memberOf.some((m) => m.toLowerCase() === c.name.toLowerCase()));
  const pickId = nextId("add-category");
  const catChips = memberOf.map((c) => el("li", { class: "chip" }, el("span", {}, c),
    el("button", { type: "button", class: "chip-remove", "aria-label": `Remove from ${c}`,
      onclick: () => actions.removeCategory(c) }, "×")));
  const addForm = others.length ? el("form", { class: "inline-form add-category", onsubmit: (event) => {
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
      el("button", { type: "button", class: "primary", id: "edit-contact", onclick: actions.edit }, "Edit"),
      el("button", { type: "button", class: "danger", id: "delete-contact", onclick: actions.remove }, "Delete")),
    el("header", { class: "contact-head" }, avatar(contact, "large"),
      el("div", {}, el("h2", { id: "contact-name", tabindex: "-1" }, name), sub && el("p", { class: "sub" }, sub))),
    section("Email", emails.length ? el("ul", { class: "values" }, emails) : null),
    section("Phone", phones.length ? el("ul", { class: "values" }, phones) : null),
    section("Address", addresses.length ? el("ul", { class: "values" }, addresses) : null),
    section("Birthday", contact.birthday ? el("p", {}, formatBirthday(contact.birthday)) : null),
    section("Web", urls.length ? el("ul", { class: "values" }, urls) : null),
    section("Notes", contact.notes ? el("p", { class: "notes" }, contact.notes) : null),
    el("section", { class: "facts-section" }, el("h3", {}, "Categories"),
      catChips.length ? el("ul", { class: "chips" }, catChips) : el("p", { class: "muted" }, "In no category."),
      addForm));
}

function typeSelect(options, current, label) {
  const value = (current || []).join(",");
  const all = options.includes(value) ? options : [...options, value];
  const id = nextId("type");
  return [el("label", { for: id, class: "visually-hidden" }, label),
    el("select", { id, class: "entry-type", name: "type" },
      ...all.map((o) => el("option", { value: o, selected: o === value }, o || "—")))];
}

function listEditor(title, field, entries, makeRow, blank) {
  const list = el("div", { class: "entries", dataset: { field } });
  const add = () => {
    const row = makeRow(blank(), list.children.length);
    list.append(row);
    const first = row.querySelector("input, textarea");
    if (first) first.focus();
  };
  entries.forEach((entry, i) => list.append(makeRow(entry, i)));
  return el("fieldset", { class: "editor-list" }, el("legend", {}, title), list,
    el("button", { type: "button", class: "quiet add-entry", onclick: add }, `Add ${title.toLowerCase().replace(/s$/, "").replace(/addresse$/, "address")}`));
}

function removeButton(label) {
  return el("button", { type: "button", class: "quiet remove-entry", "aria-label": label,
    onclick: (event) => event.target.closest(".entry").remove() }, "Remove");
}

function valueRow(kind, inputType, types, labelWord) {
  return (entry) => {
    const id = nextId(kind);
    const row = el("div", { class: "entry", dataset: { pref: entry.pref ? "1" : "" } },
      el("label", { for: id, class: "visually-hidden" }, labelWord),
      el("input", { id, name: "value", type: inputType, value: entry.value || "", placeholder: labelWord,
        autocomplete: "off" }),
      ...typeSelect(types, entry.type, `Kind of ${labelWord.toLowerCase()}`),
      removeButton(`Remove ${labelWord.toLowerCase()} ${entry.value || ""}`.trim()));
    return row;
  };
}

function addressRow(entry) {
  const grid = el("div", { class: "address-grid" });
  for (const [part, label] of ADDRESS_PARTS) {
    const id = nextId(part);
    grid.append(el("div", { class: `field field-${part}` }, el("label", { for: id }, label),
      el("input", { id, name: part, value: entry[part] || "", autocomplete: "off" })));
  }
  return el("div", { class: "entry address-entry", dataset: { pref: entry.pref ? "1" : "" } }, grid,
    el("div", { class: "address-foot" }, ...typeSelect(ADDRESS_TYPES, entry.type, "Kind of address"),
      removeButton("Remove address")));
}

function field(label, name, value, attrs = {}) {
  const id = nextId(name);
  const input = attrs.multiline
    ? el("textarea", { id, name, rows: 4 }, value || "")
    : el("input", { id, name, value: value || "", autocomplete: "off", ...attrs });
  return el("div", { class: `field field-${name}` }, el("label", { for: id }, label), input);
}

/** The edit form; `onSave(patch, photoFile)` is called with only the changed fields. */
export function renderForm(contact, categories, { onSave, onCancel, isNew }) {
  const memberOf = new Set((contact.categories || []).map((c) => c.toLowerCase()));
  const catBoxes = categories.map((c) => {
    const id = nextId("cat");
    return el("label", { class: "choice", for: id },
      el("input", { id, type: "checkbox", name: "categories", value: c.name,
        checked: memberOf.has(c.name.toLowerCase()) }), c.name);
  });
  const photoId = nextId("photo");
  const status = el("div", { class: "form-status", role: "alert" });
  const form = el("form", { class: "contact-form", "aria-labelledby": "form-title", novalidate: true },
    el("div", { class: "detail-actions" },
      el("button", { type: "button", class: "quiet", onclick: onCancel }, "Cancel"),
      el("button", { type: "submit", class: "primary", id: "save-contact" }, "Save")),
    el("h2", { id: "form-title" }, isNew ? "New contact" : `Edit ${displayName(contact)}`),
    status,
    el("div", { class: "form-grid" },
      field("Display name", "name", contact.name),
      field("Given name", "given", contact.given),
      field("Family name", "family", contact.family),
      field("Organisation", "organization", contact.organization),
      field("Job title", "title", contact.title),
      field("Birthday (YYYY-MM-DD)", "birthday", contact.birthday, { pattern: BIRTHDAY, placeholder: "1990-04-23" })),
    listEditor("Emails", "emails", contact.emails || [], valueRow("email", "email", EMAIL_TYPES, "Email"), () => ({ value: "", type: [] })),
    listEditor("Phones", "phones", contact.phones || [], valueRow("phone", "tel", PHONE_TYPES, "Phone"), () => ({ value: "", type: ["cell"] })),
    listEditor("Addresses", "addresses", contact.addresses || [], addressRow, () => ({ type: ["home"] })),
    listEditor("Web addresses", "urls", contact.urls || [], valueRow("url", "url", URL_TYPES, "Web address"), () => ({ value: "", type: [] })),
    field("Notes", "notes", contact.notes, { multiline: true }),
    el("fieldset", { class: "editor-list" }, el("legend", {}, "Categories"),
      catBoxes.length ? el("div", { class: "choices" }, catBoxes) : el("p", { class: "muted" }, "No categories yet."),
      field("New category for this contact", "new_category", "")),
    el("fieldset", { class: "editor-list photo-field" }, el("legend", {}, "Photo"),
      contact.photo ? el("div", { class: "photo-current" }, avatar(contact, "large"),
        el("label", { class: "choice" }, el("input", { type: "checkbox", name: "remove_photo" }), "Remove photo")) : null,
      el("label", { for: photoId }, contact.photo ? "Replace with a picture" : "Add a picture"),
      el("input", { id: photoId, type: "file", name: "photo", accept: "image/*" })));

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    status.replaceChildren();
    const bad = [...form.querySelectorAll("input[name=birthday]")].find((i) => !i.checkValidity());
    if (bad) {
      status.append(el("p", { class: "error" }, "Write the birthday as YYYY-MM-DD (or --MM-DD without a year)."));
      bad.focus();
      return;
    }
    const data = readForm(form);
    const patch = {};
    for (const key of TEXT_FIELDS) {
      const before = contact[key] || "";
      if (data[key] !== before) patch[key] = data[key] === "" ? null : data[key];
    }
    for (const key of LIST_FIELDS) {
      if (canon(normalise(key, data[key])) !== canon(normalise(key, contact[key] || []))) {
        patch[key] = data[key];
      }
    }
    if (isNew && !patch.name && !data.given && !data.family && !(data.emails || []).length) {
      status.append(el("p", { class: "error" }, "Give the contact a name (or at least an email address)."));
      form.querySelector("input[name=name]").focus();
      return;
    }
    if (form.elements.remove_photo && form.elements.remove_photo.checked) patch.photo = null;
    const file = form.elements.photo.files[0] || null;
    const button = form.querySelector("#save-contact");
    button.disabled = true;
    try {
      await onSave(patch, file, status);
    } finally {
      button.disabled = false;
    }
  });
  return form;
}

/** JSON with sorted keys, to compare entries whatever their key order. */
function canon(value) {
  if (Array.isArray(value)) return `[${value.map(canon).join(",")}]`;
  if (value && typeof value === "object") {
    return `{${Object.keys(value).sort().map((k) => `${JSON.stringify(k)}:${canon(value[k])}`).join(",")}}`;
  }
  return JSON.stringify(value);
}

function normalise(field, entries) {
  if (field === "categories") return [...entries].map((c) => c.toLowerCase()).sort();
  return entries.map((e) => {
    const copy = { ...e, type: [...(e.type || [])], pref: Boolean(e.pref) };
    for (const k of Object.keys(copy)) if (copy[k] === undefined) delete copy[k];
    return copy;
  });
}

function readForm(form) {
  const data = {};
  for (const key of TEXT_FIELDS) {
    const input = form.elements[key];
    data[key] = key === "notes" ? input.value : input.value.trim();
  }
  for (const fieldName of ["emails", "phones", "urls", "addresses"]) {
    const list = form.querySelector(`.entries[data-field=${fieldName}]`);
    data[fieldName] = [...list.children].map((row) => {
      const types = row.querySelector("select.entry-type").value.split(",").filter(Boolean);
      const entry = { type: types, pref: row.dataset.pref === "1" };
      if (fieldName === "addresses") {
        for (const [part] of ADDRESS_PARTS) entry[part] = row.querySelector(`[name=${part}]`).value.trim();
        return entry;
      }
      return { value: row.querySelector("[name=value]").value.trim(), ...entry };
    }).filter((e) => (fieldName === "addresses"
      ? ADDRESS_PARTS.some(([part]) => e[part]) : e.value));
  }
  const cats = [...form.querySelectorAll("input[name=categories]:checked")].map((i) => i.value);
  const extra = form.elements.new_category.value.trim();
  if (extra && !cats.some((c) => c.toLowerCase() === extra.toLowerCase())) cats.push(extra);
  data.categories = cats;
  return data;
}

// -- photos: resized in the browser, written into the card with a whole-card PUT ----
/** The picture as base64 JPEG of at most 400 px, or an Error a person can read. */
export async function shrink(file) {
  let bitmap;
  try {
    bitmap = await createImageBitmap(file);
  } catch (e) {
    throw new Error(`${file.name} is not a picture this browser can read; choose a JPEG or PNG.`);
  }
  const scale = Math.min(1, 400 / Math.max(bitmap.width, bitmap.height));
  const canvas = document.createElement("canvas");
  canvas.width = Math.round(bitmap.width * scale);
  canvas.height = Math.round(bitmap.height * scale);
  canvas.getContext("2d").drawImage(bitmap, 0, 0, canvas.width, canvas.height);
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
        await request("POST", `${booksUrl}/trash/${encodeURIComponent(contact.id)}/restore`)
          .catch((e) => (e.status === 404 ? request("POST", `${booksUrl}/contacts`, { body: card,
            headers: { "Content-Type": "text/vcard; charset=utf-8" } }) : Promise.reject(e)));
        toast(`${displayName(contact)} is back.`);
        onDone(contact.id);
      } catch (e) {
        toast(e instanceof ApiError ? e.message : String(e));
      }
    },
  });
}
