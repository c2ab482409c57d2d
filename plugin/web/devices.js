// Devices: a password of its own for each phone or app, revocable one at a time.
//
// Lists the user's device passwords (GET /api/devices) and adds one in a single
// flow: name, read-only or not, one book or all, CardDAV or the API, then
// either a password shown once (with Copy and the server address's QR code,
// the one pages.js draws) or an Apple configuration profile downloaded with a
// fresh password inside (POST /api/devices/profile). Revoke asks first.
//
// The new password lives in the page only while its box shows: Done, leaving
// the page and signing out all remove it from the DOM.

import { request, get, user } from "./api.js";
import { el, $, toast } from "./ui.js";
import { qrCode, reachable, saveFile } from "./pages.js";
import { bookSelect, grantItem, message, shownOnce } from "./grant-parts.js";

function part() { return $("#devices-part"); }

function radios(name, legend, choices, checked) {
  return el("fieldset", {}, el("legend", {}, legend),
    choices.map(([value, label]) => el("label", { class: "choice" },
      el("input", { type: "radio", name, value, defaultChecked: value === checked }), ` ${label}`)));
}

/** After a password is made: the password, how to use it, and the code of the address. */
function passwordBox(made, onDone) {
  const base = new URL(".", document.baseURI);
  const phoneCanReach = reachable(base.hostname);
  const rows = [["Server address", el("code", {}, base.href)], ["User name", el("code", {}, user())]];
  const extra = [phoneCanReach
    ? el("figure", { class: "qr" }, el("div", { class: "qr-box" }, qrCode(base.href)),
      el("figcaption", {}, "Scan with your phone to copy the server address."))
    : el("p", { class: "muted" }, "No QR code: this page is open at a loopback address, which a phone "
      + "cannot reach (see Set up a device).")];
  return shownOnce({ id: "new-device", title: `${made.name} can now sign in`, label: "Password",
    secret: made.secret, rows, extra, onDone });
}

function profileBox(name, fileName, onDone) {
  const headingId = "new-device-heading";
  return el("section", { id: "new-device", class: "shown-once card-box", "aria-labelledby": headingId },
    el("h4", { id: headingId, tabindex: "-1" }, `Downloaded the profile for ${name}`),
    el("p", {}, `${fileName} sets up the CardDAV account with a password for this device only. `
      + "Open it on the iPhone, iPad or Mac (AirDrop it, or mail it to yourself), then install it: "
      + "Settings → Profile Downloaded on a phone, System Settings → Profiles on a Mac."),
    el("p", {}, "The password is inside the file: delete the file once it is installed."),
    el("button", { type: "button", class: "primary", onclick: onDone }, "Done"));
}

function addForm(books, onAdded) {
  const error = el("p", { id: "device-add-error", class: "error", role: "alert" });
  const button = el("button", { type: "submit", class: "primary" }, "Add device");
  const protocols = radios("protocol", "Used for", [["carddav", "CardDAV (contacts apps on phones and computers)"],
    ["api", "The JSON API (scripts and web apps)"], ["both", "Both"]], "carddav");
  const form = el("form", { id: "device-add-form", class: "card-box", "aria-labelledby": "device-add-heading" },
    el("h4", { id: "device-add-heading" }, "Add a device"),
    el("label", { for: "device-name" }, "Name of the device"),
    el("input", { id: "device-name", name: "name", required: true, maxlength: "100", autocomplete: "off",
      placeholder: "Ada's phone" }),
    radios("access", "Access", [["rw", "Read and write"], ["ro", "Read only"]], "rw"),
    el("label", { for: "device-add-book" }, "Address book"),
    bookSelect("device-add-book", books),
    protocols,
    radios("setup", "Set it up with", [
      ["password", "A password to type in (Android with DAVx⁵, Thunderbird, any app)"],
      ["profile", "An Apple configuration profile (.mobileconfig) for iPhone, iPad or Mac: CardDAV only"]],
    "password"),
    button, error);
  // An Apple profile sets up CardDAV only: the choice of protocol goes while it is picked.
  form.addEventListener("change", () => { protocols.disabled = form.elements.setup.value === "profile"; });
  form.addEventListener("reset", () => { protocols.disabled = false; });
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const data = new FormData(form);
    const profile = data.get("setup") === "profile";
    const body = { name: String(data.get("name")).trim(), read_only: data.get("access") === "ro" };
    if (data.get("book")) body.books = [String(data.get("book"))];
    if (!profile) body.protocol = String(data.get("protocol"));
    error.textContent = "";
    button.disabled = true;
    try {
      if (profile) {
        const { data: file, headers } = await request("POST", "devices/profile", { body, as: "blob" });
        const found = /filename="([^"]+)"/.exec(headers.get("Content-Disposition") || "");
        const fileName = found ? found[1] : "cardfile.mobileconfig";
        saveFile(file, fileName);
        form.reset();
        await onAdded((done) => profileBox(body.name, fileName, done));
      } else {
        const { data: made } = await request("POST", "devices", { body });
        form.reset();
        await onAdded((done) => passwordBox(made, done));
      }
    } catch (e) {
      error.textContent = message(e);
      form.elements.name.focus();
    } finally {
      button.disabled = false;
    }
  });
  return form;
}

/** Empty the view (sign-out): no password shown once stays in the DOM. */
export function forgetDevices() {
  if (part()) part().replaceChildren();
}

/** Fill #devices-part: the list, then the add form; `shown` is a just-made device's box. */
export async function showDevices(shown = null) {
  const status = el("p", { id: "devices-status", class: "status", role: "status", tabindex: "-1" }, "Loading…");
  const list = el("ul", { id: "device-list", class: "grant-list", "aria-labelledby": "devices-heading-3" });
  let books = [];
  try {
    ({ data: { books } } = await get(""));
  } catch (e) { /* the form offers every book then */ }
  const reload = () => showDevices();
  const done = async () => {
    await reload();
    $("#device-name").focus();
  };
  const box = shown ? shown(done) : null;
  part().replaceChildren(
    el("h3", { id: "devices-heading-3" }, "Devices"),
    el("p", {}, "Give every phone, computer and app its own password instead of yours: you see when "
      + "each was last used and by which app, and revoking one leaves the others working."),
    box, status, list, addForm(books, (make) => showDevices(make)));
  if (box) box.querySelector("h4").focus();
  try {
    const { data } = await get("devices");
    status.textContent = data.items.length
      ? `${data.items.length} device${data.items.length === 1 ? "" : "s"}.` : "No device passwords yet.";
    list.replaceChildren(...data.items.map((grant) => grantItem(grant, {
      what: "device", url: "devices", onRevoked: reload, afterRevoke: () => $("#devices-status"),
      consequence: "Its password stops working at its next request; your other devices keep theirs.",
    })));
  } catch (e) {
    status.textContent = message(e);
    toast(message(e));
  }
}
