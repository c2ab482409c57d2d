// Friends: your own card (the "me card") and what friends see of it, invitations
// sent and received, and the friends themselves.
//
// Once two users are friends, each one's me card is copied into the other's
// book, cut down to the properties its owner ticks here (name and photo
// always), and kept current by the server. A declined or expired invitation
// shows to its sender only as "not accepted", exactly as the API says it.
// Ending a friendship asks what becomes of their card in your book: kept as a
// plain contact (no longer updated) or removed.
//
// Names (users, contacts) are other people's text and go in as text only.

import { request, get, ApiError } from "./api.js";
import { el, $, toast, displayName } from "./ui.js";
import { actThen, button, entry, section } from "./grant-parts.js";

const message = (e) => (e instanceof ApiError ? e.message : String(e));

function when(iso) {
  return iso ? new Date(iso).toLocaleDateString(undefined, { dateStyle: "medium" }) : "";
}

// -- the me card -----------------------------------------------------------------------
async function meContact(me) {
  try {
    const { data } = await get(`books/${encodeURIComponent(me.book)}/contacts/${encodeURIComponent(me.id)}`);
    return data;
  } catch (e) {
    return null;
  }
}

function chooser(book, onChosen) {
  const results = el("ul", { id: "me-results", class: "me-results", "aria-label": "Matching contacts" });
  const input = el("input", { id: "me-search", autocomplete: "off", spellcheck: "false",
    required: true });
  const form = el("form", { id: "me-search-form", class: "inline-form" },
    el("label", { for: "me-search" }, "Find your own contact"),
    el("div", { class: "field-row" }, input, el("button", { type: "submit" }, "Search")),
    results);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      const params = new URLSearchParams({ q: input.value.trim(), limit: "8" });
      const { data } = await get(`${book.url}/contacts?${params}`);
      results.replaceChildren(...data.items.map((contact) => el("li", {},
        el("button", { type: "button", class: "quiet me-choice", onclick: () => onChosen(contact) },
          `This is me: ${displayName(contact)}`),
        contact.emails && contact.emails[0] ? el("span", { class: "muted" }, ` ${contact.emails[0].value}`) : null)));
      if (!data.items.length) results.append(el("li", { class: "muted" }, "No contact matches."));
      const first = results.querySelector("button");
      if (first) first.focus();
    } catch (e) {
      results.replaceChildren(el("li", { class: "error" }, message(e)));
    }
  });
  return form;
}

function sharedBoxes(me, scopes, alwaysShared, onSave) {
  const chosen = new Set(me ? me.share : []);
  const form = el("form", { id: "me-share-form", "aria-labelledby": "me-share-legend" },
    el("fieldset", { disabled: !me },
      el("legend", { id: "me-share-legend" }, "What friends see of your card"),
      el("div", { class: "scope-boxes" }, scopes.map((s) => {
        const always = alwaysShared.includes(s.name);
        return el("label", { class: "choice" },
          el("input", { type: "checkbox", name: "share", value: s.name, disabled: always,
            defaultChecked: always || chosen.has(s.name) }),
          ` ${s.name}`, always ? el("span", { class: "muted" }, " (always)") : null);
      })),
      el("button", { type: "submit", class: "primary", id: "me-share-save" }, "Save what friends see")));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const share = [...form.querySelectorAll("input[name=share]:checked:not(:disabled)")].map((i) => i.value);
    await onSave(share);
  });
  return form;
}

/** Counts showMe's calls: one whose answers arrive after a later call began draws
 * nothing. The page routes again on every hash change (a reload, a click on the
 * link it is on), and two calls each appended their form: the part showed twice,
 * with one id on two forms (found by axe, now and then, in test_web_shares). */
let meDrawing = 0;

async function showMe(book) {
  const drawing = ++meDrawing;
  const box = $("#me-part");
  const status = el("p", { id: "me-status", class: "status", role: "status", tabindex: "-1" }, "Loading…");
  box.replaceChildren(el("h3", { id: "me-heading" }, "Your own card"), status);
  let me = null;
  let scopes = [];
  let always = [];
  try {
    const [{ data: found }, { data: offered }] = await Promise.all([get("me"), get("scopes")]);
    me = found;
    scopes = offered.items;
    always = offered.friends_always;
  } catch (e) {
    status.textContent = message(e);
    return;
  }
  const contact = me ? await meContact(me) : null;
  if (drawing !== meDrawing) return;  // a later call draws the part
  status.replaceChildren(me
    ? el("span", {}, "Friends get your card: ", el("strong", { id: "me-name" }, contact ? displayName(contact) : "(not found)"))
    : "Choose which of your contacts is you; friends get a copy of it, with only what you tick below.");
  const put = async (body, done) => {
    try {
      await request("PUT", "me", { body });
      toast(done);
      await showMe(book);
      $("#me-status").focus();
    } catch (e) {
      toast(message(e));
    }
  };
  box.append(
    sharedBoxes(me, scopes, always, (share) => put({ share }, "Saved: your friends' copies follow.")),
    el("details", { open: !me }, el("summary", {}, me ? "Choose another contact" : "Choose your contact"),
      chooser(book, (chosen) => put({ id: chosen.id, book: book.name }, `${displayName(chosen)} is your card now.`))));
}

// -- ending a friendship: keep their card or remove it --------------------------------------
let endDialog = null;

function askEnd(friend) {
  if (!endDialog) {
    endDialog = el("dialog", { id: "end-friend-dialog", class: "dialog", "aria-labelledby": "end-friend-title" },
      el("form", { method: "dialog" },
        el("h2", { id: "end-friend-title" }),
        el("p", { id: "end-friend-text" }),
        el("fieldset", {}, el("legend", {}, "Their card in your book"),
          el("label", { class: "choice" }, el("input", { type: "radio", name: "keep", value: "true",
            defaultChecked: true }), " Keep it as a plain contact (no longer updated)"),
          el("label", { class: "choice" }, el("input", { type: "radio", name: "keep", value: "false" }),
            " Remove it")),
        el("div", { class: "dialog-buttons" },
          el("button", { type: "button", id: "end-friend-cancel" }, "Cancel"),
          el("button", { type: "submit", id: "end-friend-ok", class: "danger" }, "End friendship"))));
    document.body.append(endDialog);
  }
  const form = endDialog.querySelector("form");
  form.reset();
  $("#end-friend-title").textContent = `End the friendship with ${friend}?`;
  $("#end-friend-text").textContent = `${friend} stops getting your card; the copy they have becomes a plain `
    + "contact that is no longer updated.";
  return new Promise((resolve) => {
    const finish = (result) => {
      form.removeEventListener("submit", submit);
      $("#end-friend-cancel").removeEventListener("click", dismiss);
      endDialog.removeEventListener("cancel", dismiss);
      if (endDialog.open) endDialog.close();
      resolve(result);
    };
    const submit = (event) => { event.preventDefault(); finish(form.elements.keep.value); };
    const dismiss = (event) => { event.preventDefault(); finish(null); };
    form.addEventListener("submit", submit);
    $("#end-friend-cancel").addEventListener("click", dismiss);
    endDialog.addEventListener("cancel", dismiss);
    endDialog.showModal();
    form.querySelector("input[name=keep]:checked").focus();
  });
}

// -- invitations and friends ------------------------------------------------------------------
/** Answer, withdraw or end one, then show the list again and put the focus on `focus`. */
const act = (method, url, done, focus) => actThen(method, url, done, showFriendList, focus);

async function showFriendList() {
  const box = $("#friend-lists");
  let items;
  try {
    ({ data: { items } } = await get("friends"));
  } catch (e) {
    box.replaceChildren(el("p", { class: "error" }, message(e)));
    return;
  }
  const received = items.filter((f) => f.direction === "received" && f.status === "invited you");
  const sent = items.filter((f) => f.direction === "sent" && f.status !== "friends");
  const friends = items.filter((f) => f.status === "friends");
  const url = (f, tail = "") => `friends/${encodeURIComponent(f.id)}${tail}`;
  box.replaceChildren(
    section("invitations-received", "Invitations to you", "None waiting.", received.map((f) => entry(f,
      ` invited you${f.expires ? ` (until ${when(f.expires)})` : ""}`,
      button("Accept", () => act("POST", url(f, "/accept"), `You and ${f.friend} are friends now.`,
        "#friends-heading")),
      button("Decline", () => act("POST", url(f, "/decline"), `Declined; ${f.friend} sees only “not accepted”.`,
        "#invitations-received-heading"))))),
    section("invitations-sent", "Invitations you sent", "None open.", sent.map((f) => entry(f,
      f.status === "pending" ? `: waiting${f.expires ? ` (until ${when(f.expires)})` : ""}` : ": not accepted",
      button(f.status === "pending" ? "Withdraw" : "Remove", () => act("DELETE", url(f),
        `The invitation to ${f.friend} is gone.`, "#invitations-sent-heading"))))),
    section("friends", "Friends", "No friends yet: invite someone above.", friends.map((f) => entry(f,
      f.since ? ` since ${when(f.since)}` : "",
      button("End friendship", async (event) => {
        const keep = await askEnd(f.friend);
        if (keep === null) { event.target.focus(); return; }
        await act("DELETE", url(f, `?keep=${keep}`), keep === "true"
          ? `Ended; ${f.friend}'s card stays in your book as a plain contact.`
          : `Ended; ${f.friend}'s card is removed from your book.`, "#friends-heading");
      }, true)))));
}

function inviteForm() {
  const error = el("p", { id: "invite-error", class: "error", role: "alert" });
  const input = el("input", { id: "invite-user", name: "user", required: true, maxlength: "64",
    autocomplete: "off", autocapitalize: "none", spellcheck: "false" });
  const form = el("form", { id: "invite-form", class: "inline-form" },
    el("label", { for: "invite-user" }, "Invite a user of this server (their user name)"),
    el("div", { class: "field-row" }, input, el("button", { type: "submit", class: "primary" }, "Invite")),
    error);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.textContent = "";
    try {
      const { data } = await request("POST", "friends", { body: { user: input.value.trim() } });
      form.reset();
      toast(`Invited ${data.friend}.`);
      await showFriendList();
      input.focus();
    } catch (e) {
      error.textContent = message(e);
      input.focus();
    }
  });
  return form;
}

/** Empty the view (sign-out): nobody's friends stay in the DOM. */
export function forgetFriends() {
  for (const id of ["#me-part", "#friends-part"]) if ($(id)) $(id).replaceChildren();
  if (endDialog) {
    endDialog.remove();
    endDialog = null;
  }
}

/** Fill #me-part and #friends-part (the book is where the me card is chosen from). */
export async function showFriends(book) {
  $("#friends-part").replaceChildren(
    el("h3", { id: "friends-part-heading" }, "Friends and invitations"),
    el("p", {}, "Friends are other users of this server. Each of you gets the other's card in your book "
      + "(in the Friends category) and it stays current."),
    inviteForm(), el("div", { id: "friend-lists" }));
  await Promise.all([showMe(book), showFriendList()]);
}
