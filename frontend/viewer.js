// The DICOM viewer of the patient page and the scan viewer page: Cornerstone3D (core, tools,
// dicom-image-loader) on the original stored pixels, fetched through the portal's access-checked,
// audited /scans/<id>/dicom. Bundled by frontend/build.mjs into static/viewer/viewer.js.
//
// A viewer is an element [data-viewer] (templates/diagnosis/_viewer.html); the ones inside one
// [data-viewer-group] (the current film and a prior) zoom and pan together. A viewer inside a
// closed <details> starts when it opens, so a patient page of twenty films loads none until asked.
import { init as initCore, RenderingEngine, Enums } from "@cornerstonejs/core";
import { metaData as metadataRegistry } from "@cornerstonejs/metadata";
import { init as initTools, addTool, ToolGroupManager, WindowLevelTool, PanTool, ZoomTool, Enums as ToolEnums, synchronizers } from "@cornerstonejs/tools";
import { init as initDicomLoader } from "@cornerstonejs/dicom-image-loader";

import { wireControls } from "./controls.js";
import { HeatmapOverlay } from "./heatmap.js";

const TOOL_GROUP = "portal-film";
let started = null;
let engine = null;
let counter = 0;

// Some modalities write Pixel Spacing 0\\0 when they do not know it (the NEMA CR chest of the shared
// data does): a film of zero size, which Cornerstone's renderer draws as nothing. Such a spacing is
// read as absent, with the default Cornerstone itself gives a film without one (1, flagged default).
function spacingZeroIsUnknown(next, imageId, data, options) {
  const plane = next(imageId, data, options);
  if (!plane || (plane.rowPixelSpacing > 0 && plane.columnPixelSpacing > 0)) return plane;
  return { ...plane, rowPixelSpacing: 1, columnPixelSpacing: 1, pixelSpacing: [1, 1], usingDefaultValues: true };
}

function start() {
  if (started) return started;
  started = (async () => {
    await initCore();
    initTools();
    // The worker and the codecs' WebAssembly sit beside this bundle (frontend/build.mjs).
    initDicomLoader({ maxWebWorkers: 1, wasmBasePath: new URL(".", import.meta.url).href });
    metadataRegistry.addTypedProvider(Enums.MetadataModules.IMAGE_PLANE, spacingZeroIsUnknown, { priority: 1000 });
    [WindowLevelTool, PanTool, ZoomTool].forEach(addTool);
    const tools = ToolGroupManager.createToolGroup(TOOL_GROUP);
    const { MouseBindings } = ToolEnums;
    tools.addTool(WindowLevelTool.toolName);
    tools.addTool(PanTool.toolName);
    tools.addTool(ZoomTool.toolName);
    // Left drag: window and level; middle drag (or Ctrl + left): pan; right drag (or Shift + left): zoom.
    tools.setToolActive(WindowLevelTool.toolName, { bindings: [{ mouseButton: MouseBindings.Primary }] });
    tools.setToolActive(PanTool.toolName, { bindings: [{ mouseButton: MouseBindings.Auxiliary }, { mouseButton: MouseBindings.Primary, modifierKey: ToolEnums.KeyboardBindings.Ctrl }] });
    tools.setToolActive(ZoomTool.toolName, { bindings: [{ mouseButton: MouseBindings.Secondary }, { mouseButton: MouseBindings.Primary, modifierKey: ToolEnums.KeyboardBindings.Shift }] });
    engine = new RenderingEngine("portal-films");
    return tools;
  })();
  return started;
}

const groups = new Map();

function synchronise(viewer, viewportId) {
  const group = viewer.closest("[data-viewer-group]");
  if (!group) return;
  if (!group.dataset.groupId) group.dataset.groupId = `films-${++counter}`;
  let synchronizer = groups.get(group.dataset.groupId);
  if (!synchronizer) {
    synchronizer = synchronizers.createZoomPanSynchronizer(`zoom-pan-${group.dataset.groupId}`);
    groups.set(group.dataset.groupId, synchronizer);
  }
  synchronizer.add({ renderingEngineId: engine.id, viewportId });
}

async function mount(viewer) {
  if (viewer.dataset.mounted) return;
  viewer.dataset.mounted = "starting";
  const status = viewer.querySelector("[data-viewer-status]");
  try {
    const tools = await start();
    const element = viewer.querySelector("[data-viewport]");
    const viewportId = `film-${++counter}`;
    element.oncontextmenu = (event) => event.preventDefault();
    engine.enableElement({ viewportId, type: Enums.ViewportType.STACK, element, defaultOptions: { background: [0, 0, 0] } });
    element.tabIndex = 0;  // Cornerstone takes the film out of the tab order; its arrow and zoom keys need it there
    tools.addViewport(viewportId, engine.id);
    const viewport = engine.getViewport(viewportId);
    const imageId = `wadouri:${new URL(viewer.dataset.imageUrl, window.location.href).href}`;
    await viewport.setStack([imageId]);
    viewport.render();
    synchronise(viewer, viewportId);
    const overlay = viewer.querySelector("canvas[data-heatmap-layer]") ? new HeatmapOverlay(viewer, viewport) : null;
    wireControls(viewer, viewport, imageId, overlay);
    viewer.dataset.mounted = "ready";
    if (status) status.textContent = "";
  } catch (error) {
    viewer.dataset.mounted = "failed";
    // A sentence for the reader; the details (a missing file, an undecodable frame) go to the console.
    if (status) status.textContent = "The film could not be opened in the viewer: it could not be read from the portal's storage, or it holds no image the viewer can decode. The thumbnail and the printed report still show it.";
    console.error("The viewer could not open", viewer.dataset.imageUrl, error);
  }
}

// Keep the canvases the size of their boxes (the page is resized, a card's details opens).
const resizes = new ResizeObserver(() => { if (engine) engine.resize(true, true); });

// A viewer in a closed <details> (a card of the patient page) starts when it is opened; cards added
// later (uploads, live updates) are found the same way. "toggle" does not bubble: capture it.
document.addEventListener("toggle", (event) => {
  if (event.target.open) event.target.querySelectorAll("[data-viewer]").forEach(startViewer);
}, true);
document.querySelectorAll("[data-viewer]").forEach((viewer) => { if (!viewer.closest("details:not([open])")) startViewer(viewer); });

function startViewer(viewer) {
  if (viewer.dataset.mounted) return;
  resizes.observe(viewer.querySelector("[data-viewport]"));
  mount(viewer);
}
