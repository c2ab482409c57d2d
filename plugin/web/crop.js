// Cropping a new photo to a square, in the browser, before it is uploaded.
//
// The chosen picture is drawn on a canvas with the square that will be kept;
// the square is dragged with the mouse (or a finger), the wheel zooms, and
// three sliders do the same from the keyboard (arrow keys, Page Up/Down,
// Home/End) and say it to screen readers. Only the numbers of the square are
// kept here; contact.js's `shrink` cuts it out when saving. A photo the user
// does not replace is never touched.

import { el } from "./ui.js";

const VIEW = 240; // the canvas's size in CSS pixels

let uid = 0;
const nextId = (prefix) => `${prefix}-${(uid += 1)}`;

function slider(label, min, max) {
  const id = nextId("crop");
  const input = el("input", { id, type: "range", min: String(min), max: String(max), step: "1", value: String(max) });
  return { input, row: el("div", { class: "crop-slider" }, el("label", { for: id }, label), input) };
}

/** {element, show(file), crop()}: `crop()` is {x, y, size} in the picture's pixels, or null. */
export function photoCropper() {
  const canvas = el("canvas", { class: "crop-canvas", width: String(VIEW), height: String(VIEW), "aria-hidden": "true" });
  const size = slider("Crop size (percent of the picture)", 20, 100);
  const across = slider("Crop position, left to right", 0, 100);
  const down = slider("Crop position, top to bottom", 0, 100);
  const note = el("p", { class: "muted crop-note" },
    "The photo is cut to a square: drag the square, or use the sliders.");
  const element = el("div", { class: "cropper", hidden: true }, note, canvas, size.row, across.row, down.row);
  let bitmap = null;

  /** The square from the sliders, in the picture's pixels. */
  const square = () => {
    if (!bitmap) return null;
    const side = Math.max(1, Math.round(Math.min(bitmap.width, bitmap.height) * Number(size.input.value) / 100));
    const x = Math.round((bitmap.width - side) * Number(across.input.value) / 100);
    const y = Math.round((bitmap.height - side) * Number(down.input.value) / 100);
    return { x, y, size: side };
  };
  const scale = () => Math.min(VIEW / bitmap.width, VIEW / bitmap.height);
  const draw = () => {
    const ctx = canvas.getContext("2d");
    ctx.clearRect(0, 0, VIEW, VIEW);
    if (!bitmap) return;
    const k = scale();
    const w = bitmap.width * k;
    const h = bitmap.height * k;
    const ox = (VIEW - w) / 2;
    const oy = (VIEW - h) / 2;
    ctx.drawImage(bitmap, ox, oy, w, h);
    const s = square();
    ctx.fillStyle = "rgba(0, 0, 0, 0.55)";
    ctx.beginPath();
    ctx.rect(ox, oy, w, h);
    ctx.rect(ox + s.x * k, oy + s.y * k, s.size * k, s.size * k);
    ctx.fill("evenodd");
    ctx.strokeStyle = "#fff";
    ctx.lineWidth = 2;
    ctx.strokeRect(ox + s.x * k, oy + s.y * k, s.size * k, s.size * k);
  };
  for (const s of [size, across, down]) s.input.addEventListener("input", draw);

  // Dragging: the square follows the pointer; the sliders show where it is.
  let grab = null;
  const toPicture = (event) => {
    const box = canvas.getBoundingClientRect();
    const k = scale() * (box.width / VIEW);
    const ox = (box.width - bitmap.width * k) / 2;
    const oy = (box.height - bitmap.height * k) / 2;
    return { x: (event.clientX - box.left - ox) / k, y: (event.clientY - box.top - oy) / k };
  };
  canvas.addEventListener("pointerdown", (event) => {
    if (!bitmap) return;
    const at = toPicture(event);
    const s = square();
    grab = { dx: at.x - s.x, dy: at.y - s.y };
    canvas.setPointerCapture(event.pointerId);
    event.preventDefault();
  });
  canvas.addEventListener("pointermove", (event) => {
    if (!grab || !bitmap) return;
    const at = toPicture(event);
    const s = square();
    const freeX = bitmap.width - s.size;
    const freeY = bitmap.height - s.size;
    if (freeX > 0) across.input.value = String(Math.round(Math.min(1, Math.max(0, (at.x - grab.dx) / freeX)) * 100));
    if (freeY > 0) down.input.value = String(Math.round(Math.min(1, Math.max(0, (at.y - grab.dy) / freeY)) * 100));
    draw();
  });
  const release = () => { grab = null; };
  canvas.addEventListener("pointerup", release);
  canvas.addEventListener("pointercancel", release);
  canvas.addEventListener("wheel", (event) => {
    if (!bitmap) return;
    event.preventDefault();
    const next = Number(size.input.value) + (event.deltaY < 0 ? -5 : 5);
    size.input.value = String(Math.min(100, Math.max(20, next)));
    draw();
  }, { passive: false });

  async function show(file) {
    bitmap = null;
    element.hidden = true;
    if (!file) return;
    try {
      bitmap = await createImageBitmap(file);
    } catch (e) {
      return; // saving says the picture cannot be read (contact.js shrink)
    }
    size.input.value = "100";
    across.input.value = "50";
    down.input.value = "50";
    element.hidden = false;
    draw();
  }
  return { element, show, crop: square };
}
