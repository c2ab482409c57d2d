// The other pages: duplicates (merge, undo), import & export, and setting up a device.

import { request, get, user, ApiError } from "./api.js";
import { el, $, ask, avatar, displayName, typeLabel, toast } from "./ui.js";
import qrcode from "./qrcode-generator.mjs";

const message = (e) => (e instanceof ApiError ? e.message : String(e));

// -- duplicates ------------------------------------------------------------------------
function personColumn(contact) {
  const line = (label, values) => (values.length ? el("div", { class: "dup-field" },
    el("span", { class: "dup-label" }, label), el("span", {}, values.join(", "))) : null);
  return el("div", { class: "dup-person" },
    el("div", { class: "dup-name" }, avatar(contact), el("strong", {}, displayName(contact))),
    line("Email", (contact.emails || []).map((e) => e.value)),
    line("Phone", (contact.phones || []).map((p) => p.value + (typeLabel(p.type) ? ` (${typeLabel(p.type)})` : ""))),
    line("Organisation", contact.organization ? [contact.organization] : []),
    line("Birthday", contact.birthday ? [contact.birthday] : []),
    line("Address", (contact.addresses || []).map((a) => [a.street, a.city, a.country].filter(Boolean).join(", "))),
    line("Categories", contact.categories || []),
    line("Updated", contact.updated ? [contact.updated.slice(0, 10)] : []));
}

export async function showDuplicates(book, onChange) {
  const list = $("#dup-list");
  const status = $("#dup-status");
  status.textContent = "Looking for duplicates…";
  list.setAttribute("aria-busy", "true");
  try {
    const { data } = await get(`${book.url}/duplicates`);
    list.replaceChildren();
    status.textContent = data.items.length
      ? `${data.total} group${data.total === 1 ? "" : "s"} of possible duplicates.`
      : "No duplicates found.";
    for (const cluster of data.items) {
      const names = cluster.contacts.map(displayName);
      list.append(el("section", { class: `dup-cluster ${cluster.sure ? "sure" : "review"}`,
        "aria-label": `Possible duplicates: ${names.join(" and ")}` },
      el("p", { class: "dup-reason" }, cluster.sure ? "Same person: " : "Perhaps the same person: ",
        cluster.reasons.join("; ")),
      el("div", { class: "dup-people" }, cluster.contacts.map(personColumn)),
      el("button", { type: "button", class: "primary merge-button", onclick: async (event) => {
        event.target.disabled = true;
        try {
          const { data: merge } = await request("POST", `${book.url}/merges`, { body: { ids: cluster.ids } });
          toast(`Merged ${names.join(" and ")}.`, { action: "Undo", ms: 12000,
            onAction: () => undo(book, merge, onChange) });
          onChange();
          await showDuplicates(book, onChange);
        } catch (e) {
          event.target.disabled = false;
          toast(message(e));
        }
      } }, `Merge ${cluster.contacts.length} contacts`)));
    }
  } catch (e) {
    status.textContent = message(e);
  } finally {
    list.removeAttribute("aria-busy");
  }
  await showMerges(book, onChange);
}

async function undo(book, merge, onChange) {
  try {
    await request("DELETE", merge.url);
    toast("The merge is undone: the original contacts are back.");
  } catch (e) {
    if (e.status === 409 && await confirmForce()) {
      try {
        await request("DELETE", `${merge.url}?force=true`);
        toast("The merge is undone.");
      } catch (e2) {
        toast(message(e2));
      }
    } else {
      toast(message(e));
    }
  }
  onChange();
  if (!$("#page-duplicates").hidden) await showDuplicates(book, onChange);
}

function confirmForce() {
  return ask({ title: "Undo anyway?", ok: "Undo anyway", danger: true,
    text: "The merged contact was changed after the merge; undoing puts back the originals and loses those changes." });
}

async function showMerges(book, onChange) {
  const list = $("#merge-list");
  try {
    const { data } = await get(`${book.url}/merges`);
    list.replaceChildren(...data.items.slice(0, 20).map((merge) => el("li", {},
      el("span", {}, `${merge.time.replace("T", " ").replace("Z", " UTC")}: ${merge.reason}`),
      el("button", { type: "button", class: "quiet", onclick: () => undo(book, merge, onChange) }, "Undo"))));
    if (!data.items.length) list.append(el("li", { class: "muted" }, "None yet."));
  } catch (e) {
    list.replaceChildren(el("li", { class: "error" }, message(e)));
  }
}

/** Hand `data` (a Blob) to the browser as a download named `name`. */
export function saveFile(data, name) {
  const url = URL.createObjectURL(new Blob([data], { type: "application/octet-stream" }));
  const link = el("a", { href: url, download: name, class: "visually-hidden" }, name);
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60000);
}

// -- import & export --------------------------------------------------------------------
// The media type an import is sent as. The server accepts only the types of
// contacts files (never text/plain or a form's), and never guesses one, so the
// page names it: from the format chosen, else from the file's extension.
const TYPE_BY_EXTENSION = { vcf: "text/vcard", vcard: "text/vcard", csv: "text/csv",
  ldif: "text/x-ldif", ldi: "text/x-ldif", json: "application/json" };
const TYPE_BY_FORMAT = { vcard: "text/vcard", jcard: "application/vcard+json", csv: "text/csv",
  ldif: "text/x-ldif" };

export function importType(fileName, format) {
  const extension = (/\.([a-z0-9]+)$/i.exec(fileName || "") || [])[1];
  if (format !== "auto") return TYPE_BY_FORMAT[format] || TYPE_BY_FORMAT[format.split("-").pop()] || null;
  return TYPE_BY_EXTENSION[(extension || "").toLowerCase()] || null;
}

const IMPORT_FORMATS = [["auto", "Find out from the file"], ["vcard", "vCard"], ["jcard", "jCard"],
  ["csv", "CSV (Google, Outlook, Thunderbird, LinkedIn)"], ["ldif", "LDIF"]];

export function setUpTransfer(book, getCategories, onChange) {
  const format = $("#import-format");
  format.replaceChildren(...IMPORT_FORMATS.map(([v, label]) => el("option", { value: v }, label)));
  $("#import-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const file = $("#import-file").files[0];
    const report = $("#import-report");
    if (!file) {
      report.replaceChildren(el("p", { class: "error" }, "Choose a file first."));
      return;
    }
    const type = importType(file.name, format.value);
    if (!type) {
      report.replaceChildren(el("p", { class: "error" },
        `The name ${file.name} does not say what kind of file it is: choose its format.`));
      return;
    }
    const button = $("#import-button");
    button.disabled = true;
    report.replaceChildren(el("p", {}, `Importing ${file.name}…`));
    try {
      const body = await file.arrayBuffer();
      const { data } = await request("POST", `${book.import}?format=${encodeURIComponent(format.value)}`, {
        body, headers: { "Content-Type": type } });
      report.replaceChildren(
        el("p", { class: "ok" }, `Imported ${file.name} (${data.format}).`),
        el("dl", { class: "report-counts" },
          el("dt", {}, "New"), el("dd", { id: "import-created" }, String(data.added)),
          el("dt", {}, "Merged"), el("dd", { id: "import-updated" }, String(data.merged)),
          el("dt", {}, "Unchanged"), el("dd", {}, String(data.unchanged)),
          el("dt", {}, "Skipped"), el("dd", {}, String(data.skipped)),
          el("dt", {}, "Problems"), el("dd", {}, String(data.problems.length))),
        ...(data.problems.length ? [el("ul", { class: "problems" }, data.problems.slice(0, 100).map((p) => el("li", {},
          `${p.origin}: ${p.reason}${p.skipped ? " (skipped)" : ""}`)))] : []));
      onChange();
    } catch (e) {
      report.replaceChildren(el("p", { class: "error" }, message(e)));
    } finally {
      button.disabled = false;
    }
  });
  $("#export-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const status = $("#export-status");
    const scope = $("#export-scope").value;
    const fmt = new FormData(event.target).get("export-format") || "vcard3";
    const params = new URLSearchParams({ format: fmt });
    if (scope) params.set("category", scope);
    status.textContent = "Preparing the file…";
    try {
      const { data, headers } = await get(`${book.export}?${params}`, { as: "blob" });
      const disposition = headers.get("Content-Disposition") || "";
      const found = /filename="([^"]+)"/.exec(disposition);
      const name = found ? found[1] : "contacts.vcf";
      saveFile(data, name);
      status.textContent = `Downloaded ${name}.`;
    } catch (e) {
      status.textContent = message(e);
    }
  });
  return () => {
    const scope = $("#export-scope");
    const current = scope.value;
    scope.replaceChildren(el("option", { value: "" }, "All contacts"),
      ...getCategories().map((c) => el("option", { value: c.name }, `Category: ${c.name} (${c.count})`)));
    scope.value = current;
    if (scope.value !== current) scope.value = "";
  };
}

// -- set up a device --------------------------------------------------------------------
/** Whether a phone could reach this page's host: not a loopback or unspecified address. */
export function reachable(hostname) {
  const name = String(hostname || "").toLowerCase().replace(/^\[|\]$/g, "").replace(/\.$/, "");
  if (!name || name === "localhost" || name.endsWith(".localhost")) return false;
  if (/^127\.\d+\.\d+\.\d+$/.test(name) || name === "0.0.0.0") return false;
  if (name === "::1" || name === "::" || /^::ffff:127\./.test(name) || /^::ffff:7f/.test(name)) return false;
  return true;
}

/**
 * The QR code of `text` as an SVG image (labelled "QR code of …"): the one drawing
 * of a code on the page, used here and by "Add a device" (devices.js).
 */
export function qrCode(text) {
  const qr = qrcode(0, "M");
  qr.addData(text, "Byte");
  qr.make();
  const count = qr.getModuleCount();
  const margin = 4;
  const size = count + margin * 2;
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", `0 0 ${size} ${size}`);
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", `QR code of ${text}`);
  svg.setAttribute("shape-rendering", "crispEdges");
  const bg = document.createElementNS(ns, "rect");
  bg.setAttribute("width", String(size));
  bg.setAttribute("height", String(size));
  bg.setAttribute("fill", "#fff");
  let d = "";
  for (let r = 0; r < count; r += 1) {
    for (let c = 0; c < count; c += 1) {
      if (qr.isDark(r, c)) d += `M${c + margin} ${r + margin}h1v1h-1z`;
    }
  }
  const path = document.createElementNS(ns, "path");
  path.setAttribute("d", d);
  path.setAttribute("fill", "#000");
  svg.append(bg, path);
  return svg;
}

export function showDevice(book) {
  const base = new URL(".", document.baseURI);
  const server = base.href;
  const bookUrl = new URL(`${encodeURIComponent(user())}/${encodeURIComponent(book.name)}/`, base).href;
  $("#device-base").textContent = server;
  $("#device-book").textContent = bookUrl;
  $("#device-user").textContent = user();
  $("#device-host").textContent = base.host;
  const warning = $("#device-warning");
  const loopback = !reachable(base.hostname);
  warning.hidden = !loopback;
  warning.textContent = loopback ? "This page is open at your computer's own loopback address, which a phone cannot reach. "
    + "Start the server with 'cardfile serve --host 0.0.0.0' (ideally behind a TLS proxy) and open this page at the "
    + "computer's network name or address; the addresses and the code below follow." : "";
  const figure = $("#device-qr").closest("figure");
  figure.hidden = loopback;  // a code a phone cannot use is no help
  if (loopback) {
    $("#device-qr").replaceChildren();
    return;
  }
  $("#device-qr").replaceChildren(qrCode(server));
}

export function setUpCopyButtons() {
  for (const button of document.querySelectorAll("button.copy")) {
    button.addEventListener("click", async () => {
      const text = $(`#${button.dataset.copy}`).textContent;
      try {
        await navigator.clipboard.writeText(text);
        toast("Copied.");
      } catch (e) {
        toast("Select the address and copy it (the browser refused).");
      }
    });
  }
}
