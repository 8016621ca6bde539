// Bundles the DICOM viewer (frontend/viewer.js) with esbuild into static/viewer/ (`make js`, run by
// `make install`). The output is generated: static/viewer/ is .gitignored.
//
// Cornerstone's dicom-image-loader decodes in a module web worker that it starts with
// `new Worker(new URL('./decodeImageFrameWorker.js', import.meta.url))`, and its codecs fetch their
// WebAssembly the same way. esbuild does not follow `new URL(..., import.meta.url)`, so the worker is
// bundled as a second entry point beside the viewer (the relative URL then names it), and the codecs'
// .wasm files are copied beside both; the viewer tells the loader where they are (wasmBasePath).
import { build } from "esbuild";
import { copyFileSync, mkdirSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import { basename, dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const outdir = join(root, "static", "viewer");
const require = createRequire(import.meta.url);
const inPackage = (name, file) => join(dirname(require.resolve(`${name}/package.json`)), file);

// The WebAssembly dicom-image-loader's worker loads, under the names its decoders import them by:
// JPEG 2000, HTJ2K, JPEG-LS, JPEG baseline and JPEG XL.
const CODECS = [
  "@cornerstonejs/codec-openjpeg/decodewasm",
  "@cornerstonejs/codec-openjph/wasm",
  "@cornerstonejs/codec-charls/decodewasm",
  "@cornerstonejs/codec-libjpeg-turbo-8bit/decodewasm",
  "@cornerstonejs/codec-libjxl/decodewasm",
];

// vtk.js (Cornerstone's renderer) imports its XML mesh readers at load, and they import xmlbuilder2, a
// Node library: its EventEmitter comes from the `events` package (the browser's copy of Node's), and
// Node's `url`, which it calls only to convert domain names in URLs no film viewer parses, is empty.
const nodeUrlIsEmpty = {
  name: "node-url-is-empty",
  setup(build) {
    build.onResolve({ filter: /^url$/ }, () => ({ path: "url", namespace: "empty" }));
    build.onLoad({ filter: /.*/, namespace: "empty" }, () => ({ contents: "module.exports = {};" }));
  },
};

rmSync(outdir, { recursive: true, force: true });
mkdirSync(outdir, { recursive: true });
await build({
  entryPoints: {
    viewer: join(root, "frontend", "viewer.js"),
    decodeImageFrameWorker: inPackage("@cornerstonejs/dicom-image-loader", "dist/esm/decodeImageFrameWorker.js"),
  },
  outdir,
  bundle: true,
  format: "esm",
  target: "es2022",
  minify: true,
  legalComments: "linked",
  // The Emscripten codecs `require("fs")` and `require("path")` only when they run under Node.
  external: ["fs", "path"],
  plugins: [nodeUrlIsEmpty],
  logLevel: "warning",
});
for (const codec of CODECS) {
  const wasm = require.resolve(codec);
  copyFileSync(wasm, join(outdir, basename(wasm)));
}
