// The Connected sources page: other services' address books kept in step here.
//
// Lists the user's sources with their status line (GET /api/sources), syncs one
// now (POST …/sync), connects one (POST /api/sources) and disconnects one
// (DELETE …/{name}, after a confirmation). Every field from the server (names,
// URLs, logins, a source's error message, skipped-card reasons) is someone
// else's text and goes into the page as text only, never as HTML or a link.
//
// The page's section is filled here in full; app.js only routes #/sources to
// showSources(), so this file is the whole feature.

import { request, get, ApiError } from "./api.js";
import { el, $, ask, toast } from "./ui.js";

const message = (e) => (e instanceof ApiError ? e.message : String(e));
const plural = (n, word) => `${n.toLocaleString()} ${word}${n === 1 ? "" : "s"}`;

const INTERVALS = [
  [900, "Every 15 minutes"], [3600, "Every hour"], [6 * 3600, "Every 6 hours"], [86400, "Once a day"],
];

function when(seconds) {
  if (!seconds) return "never";
  return new Date(seconds * 1000).toLocaleString(undefined, { dateStyle: "medium", timeStyle: "medium" });
}

function every(seconds) {
  const known = INTERVALS.find(([s]) => s === seconds);
  if (known) return known[1].toLowerCase();
  if (seconds % 3600 === 0) return `every ${plural(seconds / 3600, "hour")}`;
  if (seconds % 60 === 0) return `every ${plural(seconds / 60, "minute")}`;
  return `every ${plural(seconds, "second")}`;
}

/** The status as a word, a tone for the badge, and what the person can do about it. */
function verdict(source) {
  switch (source.status) {
    case "ok": return { word: "OK", tone: "ok", hint: "" };
    case "not synced yet": return { word: "Not synced yet", tone: "idle", hint: "" };
    case "needs sign-in again": return { word: "Needs sign-in again", tone: "warn",
      hint: "The source refused the login. Its contacts stay here until you sign in again: "
        + `run cardfile sources login ${source.name} on the server, or remove it and connect it again.` };
    default: return { word: source.status === "unreachable" ? "Unreachable" : "Failing", tone: "bad",
      hint: "Its contacts stay as they were; it is tried again later, less often while it fails." };
  }
}

function facts(source) {
  const rows = [
    ["Address", el("code", {}, source.url || "")],
    ["Goes into", source.into === "main"
      ? `your contacts (merged), and its own read-only book ${source.book}`
      : `its own read-only address book ${source.book}`],
    ["Contacts", plural(source.cards || 0, "card")],
    ["Last sync", when(source.last_sync) + (source.last_sync && source.last_success !== source.last_sync
      ? ` (last successful: ${when(source.last_success)})` : "")],
    ["Next refresh", source.next_sync && source.next_sync * 1000 > Date.now()
      ? `${when(source.next_sync)} (${every(source.interval)})` : `soon (${every(source.interval)})`],
  ];
  if (source.username) rows.push(["Login", `${source.username}${source.has_password ? " (password stored, encrypted)" : ""}`]);
  return el("dl", { class: "facts source-facts" }, rows.flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, v)]));
}

function statusLine(source) {
  const { word, tone, hint } = verdict(source);
  const c = source.counts || {};
  const changes = source.status === "ok"
    ? `${c.added || 0} added, ${c.updated || 0} updated, ${c.removed || 0} removed, ${c.unchanged || 0} unchanged` : "";
  const problems = source.problems || [];
  return el("div", { class: `source-status tone-${tone}` },
    el("p", { class: "source-verdict" },
      el("span", { class: "badge" }, word),
      source.status === "ok" ? ` Last sync: ${changes}.` : (source.message ? ` ${source.message}` : "")),
    hint ? el("p", { class: "muted" }, hint) : null,
    problems.length ? el("details", {}, el("summary", {}, `${plural(problems.length, "card")} skipped`),
      el("ul", {}, problems.map((p) => el("li", {}, p)))) : null,
    facts(source));
}

function sourceItem(source, onRemoved) {
  const headingId = `source-item-${source.name}`;  // names are [a-z0-9-]: a safe id
  const status = el("div", { class: "source-body", "aria-live": "polite" }, statusLine(source));
  const syncButton = el("button", { type: "button", class: "sync-source", "aria-describedby": headingId,
    onclick: async () => {
      syncButton.disabled = true;
      syncButton.textContent = "Syncing…";
      try {
        const { data } = await request("POST", `sources/${encodeURIComponent(source.name)}/sync`);
        Object.assign(source, data);
        status.replaceChildren(statusLine(source));
        toast(data.status === "ok" ? `${source.name} is up to date.` : `${source.name}: ${data.status}.`);
      } catch (e) {
        toast(message(e));
      } finally {
        syncButton.disabled = false;
        syncButton.textContent = "Sync now";
        syncButton.focus();
      }
    } }, "Sync now");
  const removeButton = el("button", { type: "button", class: "danger remove-source", "aria-describedby": headingId,
    onclick: async () => {
      const ok = await ask({ title: `Remove the source ${source.name}?`, danger: true, ok: "Remove source",
        text: source.into === "main"
          ? `Its address book ${source.book} goes, and so do the values it brought into your contacts; what you added yourself stays.`
          : `Its read-only address book ${source.book} goes from here and from your devices; nothing changes at the source.` });
      if (!ok) { removeButton.focus(); return; }
      try {
        await request("DELETE", `sources/${encodeURIComponent(source.name)}`);
        toast(`Removed ${source.name}.`);
        await onRemoved();
      } catch (e) {
        toast(message(e));
      }
    } }, "Remove");
  return el("li", { class: "source card-box", dataset: { name: source.name } },
    el("div", { class: "source-head" },
      el("h3", { id: headingId, tabindex: "-1" }, source.name),
      el("span", { class: "muted" }, source.kind === "carddav" ? "CardDAV" : source.kind),
      el("span", { class: "source-buttons" }, syncButton, removeButton)),
    status);
}

function field(id, label, input, help) {
  const helpId = help ? `${id}-help` : undefined;
  if (helpId) input.setAttribute("aria-describedby", helpId);
  return el("div", { class: "source-field" }, el("label", { for: id }, label), input,
    help ? el("p", { class: "muted small", id: helpId }, help) : null);
}

function addForm(onAdded) {
  const report = el("p", { id: "source-add-error", class: "error", role: "alert" });
  const button = el("button", { type: "submit", class: "primary", id: "source-add-button" }, "Connect");
  const form = el("form", { id: "source-add-form", class: "card-box", "aria-labelledby": "source-add-heading" },
    el("h3", { id: "source-add-heading" }, "Connect a source"),
    el("p", {}, "A CardDAV address book or server (Nextcloud, Radicale, Fastmail, iCloud with an app password…) "
      + "or a vCard or CSV file on the web. Its contacts are fetched now and then kept in step."),
    field("source-url", "Address (URL)", el("input", { id: "source-url", name: "url", type: "url", required: true,
      maxlength: "2000", placeholder: "https://dav.example.org/", autocomplete: "off", spellcheck: "false" })),
    field("source-name", "Short name (optional)", el("input", { id: "source-name", name: "name", maxlength: "40",
      pattern: "[a-z0-9][a-z0-9\\-]{0,39}", autocomplete: "off", spellcheck: "false", autocapitalize: "none" }),
    "Lower-case letters, digits and dashes; from the address if left empty."),
    field("source-interval", "Refresh", el("select", { id: "source-interval", name: "interval" },
      INTERVALS.map(([s, label]) => el("option", { value: String(s), defaultSelected: s === 3600 }, label)))),
    el("fieldset", {}, el("legend", {}, "Where its contacts go"),
      el("label", { class: "choice" }, el("input", { type: "radio", name: "into", value: "own", defaultChecked: true }),
        " Their own read-only address book"),
      el("label", { class: "choice" }, el("input", { type: "radio", name: "into", value: "main" }),
        " Also merged into my contacts (what the source brings is marked and can be taken out again)")),
    el("fieldset", {}, el("legend", {}, "Sign-in at the source (CardDAV)"),
      field("source-login", "User name there", el("input", { id: "source-login", name: "source-login",
        maxlength: "500", autocomplete: "off", spellcheck: "false", autocapitalize: "none" })),
      field("source-password", "Password or app password there", el("input", { id: "source-password",
        name: "source-password", type: "password", maxlength: "2000", autocomplete: "new-password" }),
      "Stored encrypted on the server, never shown back.")),
    button, report);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const value = (name) => form.elements[name].value.trim();
    const body = { url: value("url"), interval: Number(value("interval")), into: form.elements.into.value };
    if (value("name")) body.name = value("name");
    if (value("source-login")) body.username = value("source-login");
    if (form.elements["source-password"].value) body.password = form.elements["source-password"].value;
    report.textContent = "";
    button.disabled = true;
    button.textContent = "Connecting…";
    try {
      const { data } = await request("POST", "sources", { body });
      form.reset();
      toast(data.status === "ok" ? `Connected ${data.name}: ${plural(data.cards, "card")}.`
        : `Connected ${data.name}, but its first sync said: ${data.status}.`);
      await onAdded(data.name);
    } catch (e) {
      report.textContent = message(e);
      form.elements.url.focus();
    } finally {
      button.disabled = false;
      button.textContent = "Connect";
    }
  });
  return form;
}

/** Empty the page (sign-out): no other user's sources or half-typed password stay behind. */
export function forgetSources() {
  const section = $("#page-sources");
  if (section) section.replaceChildren();
}

/** Fill the #page-sources section; focus the source named `focus` (after an add). */
export async function showSources(focus = null) {
  const section = $("#page-sources");
  const status = el("p", { id: "sources-status", class: "status", role: "status" }, "Loading…");
  const list = el("ul", { id: "source-list", class: "source-list", "aria-labelledby": "sources-heading" });
  const reload = (name = null) => showSources(name);
  section.replaceChildren(
    el("h2", { id: "sources-heading", tabindex: "-1" }, "Connected sources"),
    el("p", {}, "Address books that live at another service, kept current here: each fills a read-only "
      + "address book your devices sync like any other, refreshed while the server runs."),
    status, list, addForm((name) => reload(name)));
  try {
    const { data } = await get("sources");
    status.textContent = data.total ? `${plural(data.total, "source")}.`
      : "No sources yet: connect one below.";
    list.replaceChildren(...data.items.map((s) => sourceItem(s, () => reload(null).then(() => $("#sources-heading").focus()))));
    const target = focus && [...list.querySelectorAll("h3")].find((h) => h.textContent === focus);
    if (target) target.focus();
  } catch (e) {
    status.textContent = message(e);
  }
}
