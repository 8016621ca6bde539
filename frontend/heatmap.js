// The AI result's heatmap as a layer over the film: the grey map static/portal.js has coloured (the
// same colour scale as the legend and the printed report) is drawn onto a canvas over the viewport,
// following the film's pan, zoom, rotation and flip, with its own opacity and a switch.
import { utilities } from "@cornerstonejs/core";

export class HeatmapOverlay {
  constructor(viewer, viewport) {
    this.viewport = viewport;
    this.imageId = viewport.getCurrentImageId();
    this.source = viewer.querySelector("canvas[data-heatmap]");
    this.layer = viewer.querySelector("canvas[data-heatmap-layer]");
    this.opacity = viewer.querySelector("input[data-heatmap-opacity]");
    this.shown = viewer.querySelector("input[data-heatmap-shown]");
    this.opacity.addEventListener("input", () => this.style());
    this.shown.addEventListener("change", () => this.style());
    // static/portal.js colours the map once it has loaded it; draw as soon as it has.
    new MutationObserver(() => this.draw()).observe(this.source, { attributes: true, attributeFilter: ["data-coloured"] });
    this.style();
    this.draw();
  }

  style() {
    this.layer.hidden = !this.shown.checked;
    this.layer.style.opacity = String(this.opacity.value / 100);
    const output = this.opacity.parentElement.querySelector("output");
    if (output) output.textContent = `${this.opacity.value}%`;
  }

  draw() {
    const { layer, source, viewport } = this;
    const element = viewport.element;
    const ratio = window.devicePixelRatio || 1;
    layer.width = Math.round(element.clientWidth * ratio);
    layer.height = Math.round(element.clientHeight * ratio);
    const context = layer.getContext("2d");
    context.setTransform(1, 0, 0, 1, 0, 0);
    context.clearRect(0, 0, layer.width, layer.height);
    if (source.dataset.coloured !== "1") return;
    const image = viewport.getCornerstoneImage();
    // Where three corners of the film are on the canvas gives the whole affine map (pan, zoom, rotation, flip).
    const corner = (column, row) => viewport.worldToCanvas(utilities.imageToWorldCoords(this.imageId, [column, row]));
    const origin = corner(0, 0);
    const right = corner(image.columns, 0);
    const down = corner(0, image.rows);
    context.setTransform(
      ratio * (right[0] - origin[0]) / source.width, ratio * (right[1] - origin[1]) / source.width,
      ratio * (down[0] - origin[0]) / source.height, ratio * (down[1] - origin[1]) / source.height,
      ratio * origin[0], ratio * origin[1],
    );
    context.imageSmoothingEnabled = true;
    context.drawImage(source, 0, 0);
    layer.dataset.drawn = "1";
  }
}
