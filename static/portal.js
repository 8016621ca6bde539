// Behaviour shared by every page. All script lives in static files (no inline script or handler),
// so the pages can be served under a Content-Security-Policy without 'unsafe-inline'.
(function () {
  // A live update answered by the login page (the session ended) or a refusal must not be swapped
  // into a card or a row: reload, so the user sees the login page or the refusal itself.
  document.addEventListener("htmx:beforeSwap", function (event) {
    const xhr = event.detail.xhr;
    const asked = new URL(event.detail.pathInfo.requestPath, window.location.href).pathname;
    const answered = xhr.responseURL ? new URL(xhr.responseURL).pathname : asked;
    if (answered !== asked || xhr.status === 401 || xhr.status === 403) {
      event.detail.shouldSwap = false;
      window.location.reload();
    }
  });

  // The heatmaps: the film viewer itself is static/viewer/viewer.js (Cornerstone3D, built from frontend/).

  // matplotlib's "jet" (the legend's colours), for a grey value 0..255.
  function jet(value) {
    const x = value / 255;
    const channel = function (centre) { return Math.round(255 * Math.min(1, Math.max(0, 1.5 - Math.abs(4 * x - centre)))); };
    return [channel(3), channel(2), channel(1)];
  }

  // A stored grey heatmap (at most 128 px) is coloured here, once, when its viewer first opens;
  // the film shows through it (half-transparent at 100%, like the old blended overlays).
  function colourHeatmap(canvas) {
    if (canvas.dataset.drawn) return;
    canvas.dataset.drawn = "1";
    const grey = new Image();
    grey.onload = function () {
      canvas.width = grey.naturalWidth;
      canvas.height = grey.naturalHeight;
      const context = canvas.getContext("2d");
      context.drawImage(grey, 0, 0);
      const pixels = context.getImageData(0, 0, canvas.width, canvas.height);
      const data = pixels.data;
      for (let i = 0; i < data.length; i += 4) {
        const rgb = jet(data[i]);
        data[i] = rgb[0]; data[i + 1] = rgb[1]; data[i + 2] = rgb[2]; data[i + 3] = 128;
      }
      context.putImageData(pixels, 0, 0);
      canvas.dataset.coloured = "1";
    };
    grey.src = canvas.dataset.heatmap;
  }

  // The printable report draws its heatmap at once (it is printed, never toggled open), and prints on request.
  document.querySelectorAll("canvas.overlay[data-heatmap][data-colour-on-load]").forEach(colourHeatmap);
  document.addEventListener("click", function (event) {
    if (event.target.closest("[data-print]")) window.print();
  });

  // "toggle" does not bubble: listen in the capture phase.
  document.addEventListener("toggle", function (event) {
    if (!event.target.matches || !event.target.matches("details.viewer") || !event.target.open) return;
    event.target.querySelectorAll("canvas.overlay[data-heatmap]").forEach(colourHeatmap);
  }, true);

})();
