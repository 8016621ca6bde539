// While a training job is queued or running, refresh its progress panel every two seconds.
(function () {
  const container = document.getElementById("job-progress");
  if (!container) return;
  const pollMs = 2000;

  function finished() {
    const panel = container.querySelector(".job-progress");
    return !panel || panel.dataset.finished === "true";
  }

  async function refresh() {
    try {
      const response = await fetch(container.dataset.url, { credentials: "same-origin", headers: { "X-Requested-With": "fetch" } });
      if (response.redirected || response.status === 401 || response.status === 403) {
        window.location.reload();  // session ended: show the login page instead of stale progress
        return;
      }
      if (response.ok) {
        const log = container.querySelector("pre.log");
        const atBottom = log && log.scrollTop + log.clientHeight >= log.scrollHeight - 4;
        container.innerHTML = await response.text();
        const newLog = container.querySelector("pre.log");
        if (newLog && (atBottom || !log)) newLog.scrollTop = newLog.scrollHeight;
      }
    } catch (error) {
      // Network blip: keep the current view and try again on the next tick.
    }
    if (!finished()) window.setTimeout(refresh, pollMs);
  }

  const log = container.querySelector("pre.log");
  if (log) log.scrollTop = log.scrollHeight;
  if (!finished()) window.setTimeout(refresh, pollMs);
})();
