// A real clash: the same field changed here and elsewhere. Both values side by side, to choose.
//
// The API merged everything else already would have (PATCH with base): only
// fields changed on both sides reach this. Each shows "Yours" and "Changed
// elsewhere", as text; the chosen values are then saved against the current
// version (its ETag), with the user's other changes.

import { el } from "./ui.js";

const NAMES = { name: "Display name", given: "Given name", family: "Family name",
  organization: "Organisation", title: "Job title", birthday: "Birthday", notes: "Notes",
  emails: "Emails", phones: "Phones", urls: "Web addresses", addresses: "Addresses",
  ims: "Instant messaging", related: "Related people", dates: "Anniversaries and other dates",
  categories: "Categories", photo: "Photo" };

function shown(field, value) {
  if (value === null || value === undefined || value === "" || (Array.isArray(value) && !value.length)) {
    return el("em", { class: "muted" }, "(empty)");
  }
  if (field === "addresses") {
    return el("ul", { class: "clash-values" }, value.map((a) => el("li", {},
      ["street", "extended", "po_box", "postal_code", "city", "region", "country"]
        .map((k) => a[k]).filter(Boolean).join(", "))));
  }
  if (Array.isArray(value)) {
    return el("ul", { class: "clash-values" }, value.map((v) => el("li", {},
      typeof v === "string" ? v : [v.value, v.label].filter(Boolean).join(" — "))));
  }
  return el("span", { class: "clash-text" }, String(value));
}

/** The clash panel; `onChoose(values, etag)` saves the chosen values. */
export function renderClash(problem, onChoose) {
  const rows = problem.conflicts.map((clash, i) => {
    const name = `clash-${i}`;
    const label = NAMES[clash.field] || clash.field;
    const option = (which, title, value, checked) => {
      const id = `${name}-${which}`;
      return el("div", { class: "clash-side" },
        el("input", { type: "radio", name, id, value: which, checked }),
        el("label", { for: id }, title), shown(clash.field, value));
    };
    return el("fieldset", { class: "clash", dataset: { field: clash.field } },
      el("legend", {}, label),
      el("div", { class: "clash-sides" },
        option("yours", "Yours", clash.yours, true),
        option("theirs", "Changed elsewhere", clash.theirs, false)));
  });
  const box = el("section", { class: "conflict", role: "alert", "aria-labelledby": "clash-title" },
    el("h3", { id: "clash-title", tabindex: "-1" }, "Changed here and elsewhere"),
    el("p", {}, "Someone changed this contact on another device or in another window while you were editing. ",
      "Your other changes fit with theirs; for these, choose which to keep."),
    ...rows,
    el("button", { type: "button", class: "primary", id: "save-choice", onclick: () => {
      const values = {};
      problem.conflicts.forEach((clash, i) => {
        const pick = box.querySelector(`input[name=clash-${i}]:checked`).value;
        values[clash.field] = pick === "yours" ? clash.yours : clash.theirs;
      });
      onChoose(values, problem.etag, problem.current);
    } }, "Save my choice"));
  return box;
}
