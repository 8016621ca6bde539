// The viewer's controls: every one a <button> or <input> with a label (templates/diagnosis/_viewer.html),
// so each has a keyboard path; the film itself takes arrow keys (pan), + and - (zoom) once focused.
import { Enums, metaData, utilities } from "@cornerstonejs/core";

// A radiograph has no Hounsfield units, so the CT windows (lung W1500/L-600 ...) mean nothing on it.
// The lung, mediastinum and bone presets are taken from this film's own histogram instead, in order
// of displayed brightness: the dark lung fields, the middle greys of the mediastinum, the brightest
// bone. Each is [lower, upper] quantile of brightness.
const PRESETS = { lung: [0.02, 0.55], mediastinum: [0.35, 0.97], bone: [0.75, 0.998] };
const PAN_STEP = 0.05;  // of the viewport's width, per arrow key
const ZOOM_STEP = 1.25;

function sortedSample(image) {
  const pixels = image.getPixelData();
  const step = Math.max(1, Math.floor(pixels.length / 200000));
  const sample = new Float64Array(Math.ceil(pixels.length / step));
  for (let i = 0, j = 0; i < pixels.length; i += step, j++) sample[j] = pixels[i];
  return sample.sort();
}

function windowFromQuantiles(sample, [low, high], monochrome1) {
  // MONOCHROME1 shows low values bright: brightness quantile q is value quantile 1 - q.
  const at = (q) => sample[Math.min(sample.length - 1, Math.max(0, Math.round((monochrome1 ? 1 - q : q) * (sample.length - 1))))];
  const [lower, upper] = [at(low), at(high)].sort((a, b) => a - b);
  return { lower, upper: Math.max(upper, lower + 1) };
}

export function wireControls(viewer, viewport, imageId, overlay) {
  const image = viewport.getCornerstoneImage();
  const monochrome1 = image.photometricInterpretation === "MONOCHROME1" || (metaData.get("imagePixelModule", imageId) || {}).photometricInterpretation === "MONOCHROME1";
  let sample = null;
  const widthInput = viewer.querySelector("[data-voi=width]");
  const centreInput = viewer.querySelector("[data-voi=centre]");
  const pixelOutput = viewer.querySelector("[data-pixel-value]");
  const element = viewport.element;
  const initialInvert = viewport.getProperties().invert;

  function showVoi() {
    const range = viewport.getProperties().voiRange;
    if (!range) return;
    const width = range.upper - range.lower;
    widthInput.value = Math.round(width);
    centreInput.value = Math.round(range.lower + width / 2);
    viewer.dataset.voi = `${Math.round(range.lower)}:${Math.round(range.upper)}`;
  }

  function setVoi(lower, upper) {
    viewport.setProperties({ voiRange: { lower, upper } });
    viewport.render();
  }

  function headerWindow() {
    const voi = metaData.get("voiLutModule", imageId) || {};
    const [centre] = [].concat(voi.windowCenter || []);
    const [width] = [].concat(voi.windowWidth || []);
    if (Number.isFinite(centre) && Number.isFinite(width)) setVoi(centre - width / 2, centre + width / 2);
    else { viewport.resetProperties(); viewport.render(); }
  }

  function pressed(button, on) { button.setAttribute("aria-pressed", String(on)); }

  const actions = {
    preset(button) {
      if (button.dataset.preset === "header") { headerWindow(); return; }
      sample = sample || sortedSample(image);
      const { lower, upper } = windowFromQuantiles(sample, PRESETS[button.dataset.preset], monochrome1);
      setVoi(lower, upper);
    },
    invert(button) {
      const invert = !viewport.getProperties().invert;
      viewport.setProperties({ invert });
      viewport.render();
      pressed(button, invert !== initialInvert);
    },
    rotate(button) {
      const rotation = ((viewport.getViewPresentation().rotation || 0) + Number(button.dataset.degrees) + 360) % 360;
      viewport.setViewPresentation({ rotation });
      viewport.render();
    },
    flip(button) {
      const camera = viewport.getCamera();
      const key = button.dataset.axis === "horizontal" ? "flipHorizontal" : "flipVertical";
      viewport.setCamera({ [key]: !camera[key] });
      viewport.render();
      pressed(button, !camera[key]);
    },
    zoom(button) { zoomBy(button.dataset.zoom === "in" ? ZOOM_STEP : 1 / ZOOM_STEP); },
    reset() {
      viewport.resetCamera();
      viewport.resetProperties();
      viewport.setViewPresentation({ rotation: 0 });
      viewport.render();
      viewer.querySelectorAll("[aria-pressed]").forEach((each) => pressed(each, false));
    },
  };

  function zoomBy(factor) {
    viewport.setZoom(viewport.getZoom() * factor);
    viewport.render();
  }

  function panBy(dx, dy) {
    const [x, y] = viewport.getPan();
    const step = (element.clientWidth || 500) * PAN_STEP;
    viewport.setPan([x + dx * step, y + dy * step]);
    viewport.render();
  }

  viewer.addEventListener("click", (event) => {
    const button = event.target.closest("button[data-action]");
    if (button && viewer.contains(button)) actions[button.dataset.action](button);
  });

  [widthInput, centreInput].forEach((input) => input.addEventListener("change", () => {
    const width = Math.max(1, Number(widthInput.value));
    const centre = Number(centreInput.value);
    if (Number.isFinite(width) && Number.isFinite(centre)) setVoi(centre - width / 2, centre + width / 2);
  }));

  const KEYS = { ArrowLeft: () => panBy(-1, 0), ArrowRight: () => panBy(1, 0), ArrowUp: () => panBy(0, -1), ArrowDown: () => panBy(0, 1),
    "+": () => zoomBy(ZOOM_STEP), "=": () => zoomBy(ZOOM_STEP), "-": () => zoomBy(1 / ZOOM_STEP) };
  element.addEventListener("keydown", (event) => {
    const key = KEYS[event.key];
    if (!key) return;
    event.preventDefault();
    key();
  });

  // The stored value under the pointer (after the modality LUT: what the window acts on).
  element.addEventListener("mousemove", (event) => {
    const box = element.getBoundingClientRect();
    const world = viewport.canvasToWorld([event.clientX - box.left, event.clientY - box.top]);
    const [column, row] = utilities.worldToImageCoords(imageId, world).map(Math.floor);
    if (column < 0 || row < 0 || column >= image.columns || row >= image.rows) { pixelOutput.textContent = "—"; return; }
    const pixels = image.getPixelData();
    const channels = image.color ? pixels.length / (image.rows * image.columns) : 1;
    const at = (row * image.columns + column) * channels;
    const value = channels === 1 ? String(pixels[at]) : Array.from(pixels.slice(at, at + 3)).join(", ");
    pixelOutput.textContent = `${value} at (${column}, ${row})`;
  });
  element.addEventListener("mouseleave", () => { pixelOutput.textContent = "—"; });

  element.addEventListener(Enums.Events.VOI_MODIFIED, showVoi);
  element.addEventListener(Enums.Events.IMAGE_RENDERED, () => { showVoi(); if (overlay) overlay.draw(); });
  showVoi();
}
