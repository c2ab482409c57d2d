// Small DOM helpers shared by the page's parts: elements, dialogs, toasts, avatars.

import { get } from "./api.js";

/** el("a", {href: "#", class: "x", onclick: f}, "text", child) */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") {
      node.addEventListener(key.slice(2), value);
    } else if (key === "class") {
      node.className = value;
    } else if (key === "dataset") {
      Object.assign(node.dataset, value);
    } else if (key in node && typeof value !== "string") {
      node[key] = value;
    } else {
      node.setAttribute(key, value === true ? "" : value);
    }
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

export const $ = (selector, root = document) => root.querySelector(selector);

let toastTimer = null;
/** A message at the bottom; with an action button (Undo) while it shows. */
export function toast(message, { action, onAction, ms = 6000 } = {}) {
  const box = $("#toast");
  clearTimeout(toastTimer);
  box.replaceChildren(el("span", {}, message));
  if (action) {
    box.append(el("button", {
      type: "button", class: "toast-action", onclick: async () => {
        box.hidden = true;
        clearTimeout(toastTimer);
        await onAction();
      },
    }, action));
  }
  box.append(el("button", { type: "button", class: "toast-close", "aria-label": "Dismiss",
    onclick: () => { box.hidden = true; } }, "×"));
  box.hidden = false;
  toastTimer = setTimeout(() => { box.hidden = true; }, ms);
}

/** A modal question; resolves to the typed text (prompt), true (confirm) or null. */
export function ask({ title, text = "", label = "", value = "", ok = "OK", danger = false }) {
  const dialog = $("#dialog");
  $("#dialog-title").textContent = title;
  $("#dialog-text").textContent = text;
  $("#dialog-text").hidden = !text;
  const field = $("#dialog-field");
  const input = $("#dialog-input");
  field.hidden = !label;
  input.required = Boolean(label);
  $("#dialog-label").textContent = label;
  input.value = value;
  const okButton = $("#dialog-ok");
  okButton.textContent = ok;
  okButton.className = danger ? "danger" : "primary";
  return new Promise((resolve) => {
    const cancel = $("#dialog-cancel");
    const form = $("#dialog-form");
    const done = (result) => {
      form.removeEventListener("submit", submit);
      cancel.removeEventListener("click", dismiss);
      dialog.removeEventListener("cancel", dismiss);
      if (dialog.open) dialog.close();
      resolve(result);
    };
    const submit = (event) => {
      event.preventDefault();
      if (label && !input.value.trim()) return;
      done(label ? input.value.trim() : true);
    };
    const dismiss = (event) => { event.preventDefault(); done(null); };
    form.addEventListener("submit", submit);
    cancel.addEventListener("click", dismiss);
    dialog.addEventListener("cancel", dismiss);
    dialog.showModal();
    (label ? input : okButton).focus();
    if (label) input.select();
  });
}

export function initials(name) {
  let words = (name || "").replace(/[^\p{L}\p{N}\s]/gu, " ").trim().split(/\s+/).filter(Boolean);
  const lettered = words.filter((w) => /\p{L}/u.test(w));
  if (lettered.length) words = lettered;
  if (!words.length) return "?";
  const first = [...words[0]][0] || "";
  const last = words.length > 1 ? [...words[words.length - 1]][0] : "";
  return (first + last).toUpperCase();
}

function hue(text) {
  let h = 0;
  for (const ch of text || "") h = (h * 31 + ch.codePointAt(0)) % 360;
  return h;
}

// Photos need the Authorization header, so they are fetched as blobs and kept
// as object URLs (a bounded cache: the oldest are released). A blob: URL is
// on this page's origin, so one is made only of a JPEG, PNG, GIF or WebP
// answer, typed as exactly that: an SVG or HTML "photo" must never become a
// document that could be opened here.
const photos = new Map();
const IMAGE_TYPES = new Set(["image/jpeg", "image/png", "image/gif", "image/webp"]);
const PHOTO_CACHE = 400;

export function forgetPhotos() {
  for (const url of photos.values()) url.then((u) => u && URL.revokeObjectURL(u));
  photos.clear();
}

export function photoUrl(contact) {
  if (!contact.photo) return Promise.resolve(null);
  const key = contact.photo + "#" + (contact.etag || "");
  if (!photos.has(key)) {
    if (photos.size >= PHOTO_CACHE) {
      const [oldest] = photos.keys();
      photos.get(oldest).then((u) => u && URL.revokeObjectURL(u));
      photos.delete(oldest);
    }
    photos.set(key, get(contact.photo, { as: "blob" })
      .then(({ data, headers }) => {
        const type = (headers.get("Content-Type") || "").split(";")[0].trim().toLowerCase();
        if (!data || !IMAGE_TYPES.has(type)) return null;
        return URL.createObjectURL(new Blob([data], { type }));
      })
      .catch(() => null));
  }
  return photos.get(key);
}

/** A round picture: the photo when there is one, else initials on a colour. */
export function avatar(contact, size = "small") {
  const name = contact.name || "";
  const box = el("span", { class: `avatar ${size}`, "aria-hidden": "true" }, initials(name));
  box.style.setProperty("--avatar-hue", String(hue(name)));
  if (contact.photo) {
    photoUrl(contact).then((url) => {
      if (!url) return;
      box.replaceChildren(el("img", { src: url, alt: "" }));
      box.classList.add("has-photo");
    });
  }
  return box;
}

export function displayName(contact) {
  return contact.name || [contact.given, contact.family].filter(Boolean).join(" ")
    || (contact.emails && contact.emails[0] && contact.emails[0].value) || "(no name)";
}

export function typeLabel(types) {
  return (types || []).filter((t) => t !== "voice").join(", ");
}
