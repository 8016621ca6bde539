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

  // The result viewer. Listeners sit on the document, so cards swapped in later work too.
  document.addEventListener("input", function (event) {
    const slider = event.target.closest(".viewer input.opacity");
    if (!slider) return;
    const viewer = slider.closest(".viewer");
    viewer.querySelector(".overlay").style.opacity = String(slider.value / 100);
    viewer.querySelector("output").textContent = slider.value + "%";
  });

  document.addEventListener("click", function (event) {
    const button = event.target.closest(".viewer [data-zoom-to]");
    if (!button) return;
    const viewer = button.closest(".viewer");
    const film = viewer.querySelector(".film");
    const overlay = viewer.querySelector(".overlay");
    const actual = button.dataset.zoomTo === "actual";
    viewer.querySelector(".viewer-stage").classList.toggle("actual", actual);
    // The heatmap may be stored smaller than the film: at 100% it is stretched to the film's own pixels.
    film.style.width = actual ? film.naturalWidth + "px" : "";
    overlay.style.width = actual ? film.naturalWidth + "px" : "";
    overlay.style.height = actual ? film.naturalHeight + "px" : "";
    viewer.querySelectorAll("[data-zoom-to]").forEach(function (each) {
      each.setAttribute("aria-pressed", String(each === button));
    });
  });
})();
