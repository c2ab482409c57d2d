// The edit form: what it shows, what the user changed, and the patch that says only that.
//
// The form is compared with the contact it was opened from; the patch holds
// only the fields that differ, and `base` the values those fields had then,
// so the API can merge with a change made elsewhere meanwhile (PATCH with
// base, a three-way merge) and a save that changes nothing sends nothing.
// Multi-line values (a street of three lines, notes) are textareas, so they
// come back exactly as they were; each phone, email, address and web address
// shows its label (Apple's X-ABLabel) and kind (TYPE), both editable, and can
// be moved up or down (the order is the order of the lines in the card).

import { el, avatar, displayName } from "./ui.js";
import { photoCropper } from "./crop.js";

const EMAIL_TYPES = ["", "home", "work", "other"];
const PHONE_TYPES = ["", "cell", "home", "work", "main", "fax", "pager", "other"];
const URL_TYPES = ["", "home", "work", "other"];
const ADDRESS_TYPES = ["", "home", "work", "other"];
const IM_TYPES = ["", "home", "work", "other"];
/** Related people: vCard 4's RELATED types and Apple's built-in labels (one list). */
const RELATION_TYPES = ["", "spouse", "partner", "child", "parent", "father", "mother", "brother",
  "sister", "friend", "assistant", "manager", "colleague", "emergency"];
const DATE_TYPES = ["", "anniversary", "other"];
/** Instant-messaging services by URI scheme ("" : a whole URI typed as it is). */
export const IM_SERVICES = [["skype", "Skype"], ["xmpp", "XMPP (Jabber)"], ["sip", "SIP"],
  ["aim", "AIM"], ["icq", "ICQ"], ["msnim", "MSN"], ["ymsgr", "Yahoo"], ["", "Other (a URI)"]];
const ADDRESS_PARTS = [["street", "Street"], ["extended", "Extended address"],
  ["po_box", "PO box"], ["city", "City"], ["region", "Region"],
  ["postal_code", "Postal code"], ["country", "Country"]];
export const TEXT_FIELDS = ["name", "given", "family", "middle", "prefix", "suffix", "nickname",
  "phonetic_given", "phonetic_family", "organization", "title", "birthday", "notes"];
const ENTRY_FIELDS = ["emails", "phones", "urls", "addresses", "ims", "related", "dates"];
const LIST_FIELDS = [...ENTRY_FIELDS, "categories"];
const BIRTHDAY = "(\\d{4}|--)-?\\d{2}-?\\d{2}|\\d{4}-\\d{2}|---\\d{2}";
/** Multi-line text: kept exactly (a street's or a note's line breaks and spaces). */
const MULTILINE = new Set(["notes", "street"]);

let uid = 0;
const nextId = (prefix) => `${prefix}-${(uid += 1)}`;

function typeSelect(options, current, label) {
  const value = (current || []).join(",");
  const all = options.includes(value) ? options : [...options, value];
  const id = nextId("type");
  return [el("label", { for: id, class: "visually-hidden" }, label),
    el("select", { id, class: "entry-type", name: "type" },
      ...all.map((o) => el("option", { value: o, selected: o === value }, o || "—")))];
}

function labelInput(entry, what) {
  const id = nextId("label");
  return [el("label", { for: id, class: "visually-hidden" }, `Label of ${what}`),
    el("input", { id, name: "label", class: "entry-label", value: entry.label || "",
      placeholder: "Label", maxlength: "200", autocomplete: "off" })];
}

function listEditor(title, field, entries, makeRow, blank, one = title.toLowerCase().replace(/s$/, "").replace(/addresse$/, "address")) {
  const list = el("div", { class: "entries", dataset: { field } });
  const add = () => {
    const row = makeRow(blank(), list.children.length);
    list.append(row);
    const first = row.querySelector("input, textarea");
    if (first) first.focus();
    list.dispatchEvent(new Event("input", { bubbles: true }));
  };
  entries.forEach((entry, i) => list.append(makeRow(entry, i)));
  return el("fieldset", { class: "editor-list" }, el("legend", {}, title), list,
    el("button", { type: "button", class: "quiet add-entry", onclick: add }, `Add ${one}`));
}

function removeButton(label) {
  return el("button", { type: "button", class: "quiet remove-entry", "aria-label": label,
    onclick: (event) => {
      const entry = event.target.closest(".entry");
      const form = entry.closest("form");
      const next = entry.nextElementSibling || entry.previousElementSibling;
      entry.remove();
      form.dispatchEvent(new Event("input", { bubbles: true }));
      // The focus must not fall to <body>: to the next entry, else the list's Add button.
      const target = next ? next.querySelector("input, textarea") : null;
      (target || form.querySelector(".add-entry")).focus();
    } }, "Remove");
}

/**
 * Move up / Move down: keyboard buttons, named for screen readers; the focus stays
 * on the button pressed (or goes to the other one at the end of the list) and the
 * new position is announced.
 */
function moveButtons(what) {
  const move = (event, step) => {
    const entry = event.currentTarget.closest(".entry");
    const list = entry.parentElement;
    const rows = [...list.children];
    const at = rows.indexOf(entry);
    const to = at + step;
    if (to < 0 || to >= rows.length) return;
    if (step < 0) list.insertBefore(entry, rows[to]);
    else list.insertBefore(entry, rows[to].nextElementSibling);
    const edge = (step < 0 && to === 0) || (step > 0 && to === rows.length - 1);
    entry.querySelector(edge ? (step < 0 ? ".move-down" : ".move-up") : (step < 0 ? ".move-up" : ".move-down")).focus();
    const live = list.closest("form").querySelector(".move-status");
    if (live) live.textContent = `Moved ${what} to position ${to + 1} of ${rows.length}.`;
    list.dispatchEvent(new Event("input", { bubbles: true }));
  };
  return [el("button", { type: "button", class: "quiet move-up", "aria-label": `Move ${what} up`,
    title: "Move up", onclick: (e) => move(e, -1) }, "↑"),
  el("button", { type: "button", class: "quiet move-down", "aria-label": `Move ${what} down`,
    title: "Move down", onclick: (e) => move(e, 1) }, "↓")];
}

function valueRow(kind, inputType, types, labelWord) {
  return (entry) => {
    const id = nextId(kind);
    const what = `${labelWord.toLowerCase()} ${entry.value || ""}`.trim();
    return el("div", { class: "entry", dataset: { pref: entry.pref ? "1" : "" } },
      el("label", { for: id, class: "visually-hidden" }, labelWord),
      el("input", { id, name: "value", type: inputType, value: entry.value || "", placeholder: labelWord,
        autocomplete: "off" }),
      ...labelInput(entry, what),
      ...typeSelect(types, entry.type, `Kind of ${labelWord.toLowerCase()}`),
      ...moveButtons(what),
      removeButton(`Remove ${what}`));
  };
}

/** An instant-messaging address: a service chooser and the handle (value: scheme:handle). */
function imRow(entry) {
  const value = entry.value || "";
  const m = /^([a-z][a-z0-9+.-]*):(.*)$/i.exec(value);
  const known = m && IM_SERVICES.some(([scheme]) => scheme && scheme === m[1].toLowerCase());
  const scheme = !value ? "skype" : known ? m[1].toLowerCase() : "";
  const handleId = nextId("im");
  const serviceId = nextId("service");
  const what = `instant messaging ${value}`.trim();
  const service = el("select", { id: serviceId, name: "service", class: "im-service" },
    ...IM_SERVICES.map(([s, name]) => el("option", { value: s, selected: s === scheme }, name)));
  const handle = el("input", { id: handleId, name: "value", value: known ? m[2] : value,
    placeholder: "Handle", autocomplete: "off" });
  const row = el("div", { class: "entry im-entry", dataset: { pref: entry.pref ? "1" : "" } },
    el("label", { for: serviceId, class: "visually-hidden" }, "Service"), service,
    el("label", { for: handleId, class: "visually-hidden" }, "Instant messaging handle"), handle,
    ...labelInput(entry, what), ...typeSelect(IM_TYPES, entry.type, "Kind of instant messaging"),
    ...moveButtons(what), removeButton(`Remove ${what}`));
  row.readValue = () => {
    const typed = handle.value.trim();
    return service.value && typed ? `${service.value}:${typed}` : typed;
  };
  return row;
}

/** A related person: the name (or a URI), the relation (TYPE) and an own label. */
function relatedRow(entry) {
  const id = nextId("related");
  const what = `related person ${entry.value || ""}`.trim();
  return el("div", { class: "entry", dataset: { pref: entry.pref ? "1" : "" } },
    el("label", { for: id, class: "visually-hidden" }, "Related person"),
    el("input", { id, name: "value", value: entry.value || "", placeholder: "Name", autocomplete: "off" }),
    ...typeSelect(RELATION_TYPES, entry.type, "Relation"),
    ...labelInput(entry, what),
    ...moveButtons(what), removeButton(`Remove ${what}`));
}

/** An anniversary or other date: the date picker of the birthday, a kind and a label. */
function dateRow(entry) {
  const what = `date ${entry.label || (entry.type || []).join(" ") || entry.value || ""}`.trim();
  const row = el("div", { class: "entry date-entry", dataset: { pref: entry.pref ? "1" : "" } },
    ...datePicker(entry.value, "Date", "value"),
    ...typeSelect(DATE_TYPES, entry.type, "Kind of date"),
    ...labelInput(entry, what),
    ...moveButtons(what), removeButton(`Remove ${what}`));
  return row;
}

function addressRow(entry) {
  const grid = el("div", { class: "address-grid" });
  for (const [part, label] of ADDRESS_PARTS) {
    const id = nextId(part);
    const input = MULTILINE.has(part)
      ? el("textarea", { id, name: part, rows: Math.max(2, (entry[part] || "").split("\n").length), autocomplete: "off" }, entry[part] || "")
      : el("input", { id, name: part, value: entry[part] || "", autocomplete: "off" });
    grid.append(el("div", { class: `field field-${part}` }, el("label", { for: id }, label), input));
  }
  const what = `address ${entry.city || entry.street || ""}`.split("\n")[0].trim();
  return el("div", { class: "entry address-entry", dataset: { pref: entry.pref ? "1" : "" } }, grid,
    el("div", { class: "address-foot" }, ...labelInput(entry, "address"),
      ...typeSelect(ADDRESS_TYPES, entry.type, "Kind of address"),
      ...moveButtons(what), removeButton("Remove address")));
}

function field(label, name, value, attrs = {}) {
  const id = nextId(name);
  const { multiline, ...rest } = attrs;
  const input = multiline
    ? el("textarea", { id, name, rows: 4, ...rest }, value || "")
    : el("input", { id, name, value: value || "", autocomplete: "off", ...rest });
  return el("div", { class: `field field-${name}` }, el("label", { for: id }, label), input);
}

/**
 * A date picker with "Year not known" (written --MM-DD), for the birthday and
 * every other date. The value sent (the hidden input `name`) is the card's own
 * text until the user changes the date, so an untouched date in another
 * notation (19061209) is not rewritten. A date that is free text (vCard 4:
 * "circa 1800") stays a text field. Returns the elements to put in a row.
 */
function datePicker(value, labelText, name) {
  const text = value || "";
  const m = /^(\d{4}|--)-?(\d{2})-?(\d{2})$/.exec(text);
  const id = nextId(name);
  if (text && !m) {
    return [el("label", { for: id }, labelText),
      el("input", { id, name, value: text, autocomplete: "off", pattern: BIRTHDAY, class: "date-text" })];
  }
  const hidden = el("input", { type: "hidden", name, value: text });
  const noYearId = nextId("no-year");
  const picker = el("input", { id, type: "date", class: "date-picker", value: m ? `${m[1] === "--" ? "2000" : m[1]}-${m[2]}-${m[3]}` : "" });
  const noYear = el("input", { id: noYearId, type: "checkbox", checked: Boolean(m && m[1] === "--") });
  const update = () => {
    const date = /^(\d{4})-(\d{2})-(\d{2})$/.exec(picker.value);
    hidden.value = !date ? "" : noYear.checked ? `--${date[2]}-${date[3]}` : picker.value;
  };
  picker.addEventListener("input", update);
  picker.addEventListener("change", update);
  noYear.addEventListener("change", update);
  return [el("label", { for: id }, labelText), picker, hidden,
    el("label", { class: "choice", for: noYearId }, noYear, "Year not known")];
}

/** The birthday: the date picker, as a field of the form. */
function birthdayField(value) {
  return el("div", { class: "field field-birthday" }, ...datePicker(value, "Birthday", "birthday"));
}

/**
 * The edit form of `contact` (filled from `draft` when one is given).
 * Returns {form, changes(), dirty(), data(), status}; `onSave({patch, base, photo, crop, status})`
 * (`crop`: the square of the chosen picture to keep, in its pixels).
 */
export function renderForm(contact, categories, { onSave, onCancel, onInput, isNew, draft }) {
  const shown = draft || contact;
  const memberOf = new Set((shown.categories || []).map((c) => c.toLowerCase()));
  const known = new Set(categories.map((c) => c.name.toLowerCase()));
  const catBoxes = categories.map((c) => {
    const id = nextId("cat");
    return el("label", { class: "choice", for: id },
      el("input", { id, type: "checkbox", name: "categories", value: c.name,
        checked: memberOf.has(c.name.toLowerCase()) }), c.name);
  });
  const pending = (shown.categories || []).filter((c) => !known.has(c.toLowerCase()));
  const photoId = nextId("photo");
  const cropper = photoCropper();
  const status = el("div", { class: "form-status", role: "alert" });
  const form = el("form", { class: "contact-form", "aria-labelledby": "form-title", novalidate: true },
    el("div", { class: "detail-actions" },
      el("button", { type: "button", class: "quiet", id: "cancel-edit", onclick: onCancel }, "Cancel"),
      el("button", { type: "submit", class: "primary", id: "save-contact" }, "Save")),
    el("h2", { id: "form-title", tabindex: "-1" }, isNew ? "New contact" : `Edit ${displayName(contact)}`),
    status,
    el("div", { class: "form-grid" },
      field("Display name", "name", shown.name),
      field("Given name", "given", shown.given),
      field("Family name", "family", shown.family),
      field("Middle name", "middle", shown.middle),
      field("Name prefix (Dr., Ms.)", "prefix", shown.prefix),
      field("Name suffix (Jr., PhD)", "suffix", shown.suffix),
      field("Nickname", "nickname", shown.nickname, { placeholder: "several: separate with commas" }),
      field("Phonetic (first)", "phonetic_given", shown.phonetic_given),
      field("Phonetic (last)", "phonetic_family", shown.phonetic_family),
      field("Organisation", "organization", shown.organization),
      field("Job title", "title", shown.title),
      birthdayField(shown.birthday)),
    listEditor("Emails", "emails", shown.emails || [], valueRow("email", "email", EMAIL_TYPES, "Email"), () => ({ value: "", type: [] })),
    listEditor("Phones", "phones", shown.phones || [], valueRow("phone", "tel", PHONE_TYPES, "Phone"), () => ({ value: "", type: ["cell"] })),
    listEditor("Addresses", "addresses", shown.addresses || [], addressRow, () => ({ type: ["home"] })),
    listEditor("Web addresses", "urls", shown.urls || [], valueRow("url", "url", URL_TYPES, "Web address"), () => ({ value: "", type: [] })),
    listEditor("Instant messaging", "ims", shown.ims || [], imRow, () => ({ value: "", type: [] }), "instant messaging"),
    listEditor("Related people", "related", shown.related || [], relatedRow, () => ({ value: "", type: ["spouse"] }), "related person"),
    listEditor("Anniversaries and other dates", "dates", shown.dates || [], dateRow, () => ({ value: "", type: ["anniversary"] }), "date"),
    el("p", { class: "visually-hidden move-status", role: "status" }),
    field("Notes", "notes", shown.notes, { multiline: true }),
    el("fieldset", { class: "editor-list" }, el("legend", {}, "Categories"),
      catBoxes.length ? el("div", { class: "choices" }, catBoxes) : el("p", { class: "muted" }, "No categories yet."),
      field("New category for this contact", "new_category", pending.join(", "))),
    el("fieldset", { class: "editor-list photo-field" }, el("legend", {}, "Photo"),
      contact.photo ? el("div", { class: "photo-current" }, avatar(contact, "large"),
        el("label", { class: "choice" }, el("input", { type: "checkbox", name: "remove_photo",
          checked: Boolean(draft && draft.photo === null && contact.photo) }), "Remove photo")) : null,
      el("label", { for: photoId }, contact.photo ? "Replace with a picture" : "Add a picture"),
      el("input", { id: photoId, type: "file", name: "photo", accept: "image/*" }),
      cropper.element));

  const data = () => readForm(form);
  /** Only what differs from the contact as opened; `base`: those fields as they were. */
  const changes = () => {
    const now = data();
    const patch = {};
    for (const key of TEXT_FIELDS) {
      const before = contact[key] || "";
      if (now[key] !== before) patch[key] = now[key] === "" ? null : now[key];
    }
    for (const key of LIST_FIELDS) {
      if (canon(normalise(key, now[key])) !== canon(normalise(key, contact[key] || []))) {
        patch[key] = now[key];
      }
    }
    if (now.photo === null && contact.photo) patch.photo = null;
    const base = {};
    for (const key of Object.keys(patch)) base[key] = key === "photo" ? contact.photo : (contact[key] ?? null);
    const photo = form.elements.photo.files[0] || null;
    return { patch, base, photo, crop: photo ? cropper.crop() : null };
  };
  const dirty = () => {
    const { patch, photo } = changes();
    return Boolean(photo) || Object.keys(patch).length > 0;
  };
  form.elements.photo.addEventListener("change", () => cropper.show(form.elements.photo.files[0] || null));
  form.addEventListener("input", () => onInput && onInput());
  form.addEventListener("change", () => onInput && onInput());
  form.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && !event.defaultPrevented) {
      event.preventDefault();
      onCancel();
    }
  });

  const refused = () => form.dispatchEvent(new CustomEvent("saved", { detail: false }));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    status.replaceChildren();
    const bad = [...form.querySelectorAll("input[name=birthday], .date-entry input.date-text")]
      .find((i) => !i.checkValidity());
    if (bad) {
      status.append(el("p", { class: "error" }, `Write the ${bad.name === "birthday" ? "birthday" : "date"} as YYYY-MM-DD (or --MM-DD without a year).`));
      bad.focus();
      refused();
      return;
    }
    const { patch, base, photo, crop } = changes();
    const now = data();
    if (isNew && !patch.name && !now.given && !now.family && !(now.emails || []).length) {
      status.append(el("p", { class: "error" }, "Give the contact a name (or at least an email address)."));
      form.querySelector("input[name=name]").focus();
      refused();
      return;
    }
    const button = form.querySelector("#save-contact");
    button.disabled = true;
    try {
      await onSave({ patch, base, photo, crop, status });
    } finally {
      button.disabled = false;
    }
  });
  return { form, changes, dirty, data, status };
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
    const copy = { ...e, type: [...(e.type || [])], pref: Boolean(e.pref), label: e.label || "" };
    for (const k of Object.keys(copy)) if (copy[k] === undefined) delete copy[k];
    return copy;
  });
}

function readForm(form) {
  const data = {};
  for (const key of TEXT_FIELDS) {
    const input = form.elements[key];
    data[key] = MULTILINE.has(key) ? input.value : input.value.trim();
  }
  for (const fieldName of ENTRY_FIELDS) {
    const list = form.querySelector(`.entries[data-field=${fieldName}]`);
    data[fieldName] = [...list.children].map((row) => {
      const types = row.querySelector("select.entry-type").value.split(",").filter(Boolean);
      const label = row.querySelector("input[name=label]").value.trim();
      const entry = { type: types, pref: row.dataset.pref === "1", label };
      if (fieldName === "addresses") {
        for (const [part] of ADDRESS_PARTS) {
          const input = row.querySelector(`[name=${part}]`);
          entry[part] = MULTILINE.has(part) ? input.value.replace(/\r\n?/g, "\n") : input.value.trim();
        }
        return entry;
      }
      const value = row.readValue ? row.readValue() : row.querySelector("[name=value]").value.trim();
      return { value, ...entry };
    }).filter((e) => (fieldName === "addresses"
      ? ADDRESS_PARTS.some(([part]) => e[part].trim()) : e.value));
  }
  const cats = [...form.querySelectorAll("input[name=categories]:checked")].map((i) => i.value);
  for (const extra of form.elements.new_category.value.split(",").map((c) => c.trim()).filter(Boolean)) {
    if (!cats.some((c) => c.toLowerCase() === extra.toLowerCase())) cats.push(extra);
  }
  data.categories = cats;
  if (form.elements.remove_photo && form.elements.remove_photo.checked) data.photo = null;
  return data;
}
