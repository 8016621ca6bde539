// While any scan on the page waits for its AI result, refresh the history every two seconds.
(function () {
  const container = document.getElementById("history");
  if (!container) return;
  const pollMs = 2000;

  function pending() {
    const history = container.querySelector(".history");
    return history && history.dataset.pending === "true";
  }

  async function refresh() {
    try {
      const response = await fetch(container.dataset.url, { credentials: "same-origin", headers: { "X-Requested-With": "fetch" } });
      if (response.redirected || response.status === 401 || response.status === 403) {
        window.location.reload();  // session ended: show the login page instead of stale data
        return;
      }
      if (response.ok) container.innerHTML = await response.text();
    } catch (error) {
      // Network blip: keep the current view and try again on the next tick.
    }
    if (pending()) window.setTimeout(refresh, pollMs);
  }

  if (pending()) window.setTimeout(refresh, pollMs);
})();
