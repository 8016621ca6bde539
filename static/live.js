// Refresh each [data-live-url] region every two seconds while what it shows is still changing,
// which its content says with an element marked data-live="true": a training job queued or running.
// Used by the training job page; the clinical pages update card by card with htmx instead.
(function () {
  const pollMs = 2000;

  function scrollLogsToBottom(region, onlyIfWasAtBottom) {
    region.querySelectorAll("pre.log").forEach(function (log, index) {
      if (!onlyIfWasAtBottom || onlyIfWasAtBottom[index] !== false) log.scrollTop = log.scrollHeight;
    });
  }

  function logsAtBottom(region) {
    return Array.from(region.querySelectorAll("pre.log"), (log) => log.scrollTop + log.clientHeight >= log.scrollHeight - 4);
  }

  document.querySelectorAll("[data-live-url]").forEach(function (region) {
    const stillChanging = () => region.querySelector('[data-live="true"]') !== null;

    async function refresh() {
      try {
        const response = await fetch(region.dataset.liveUrl, { credentials: "same-origin", headers: { "X-Requested-With": "fetch" } });
        if (response.redirected || response.status === 401 || response.status === 403) {
          window.location.reload();  // the session ended: show the login page, not stale data
          return;
        }
        if (response.ok) {
          const wasAtBottom = logsAtBottom(region);
          region.innerHTML = await response.text();
          scrollLogsToBottom(region, wasAtBottom);
        }
      } catch (error) {
        // A network blip: keep the current view and try again on the next tick.
      }
      if (stillChanging()) window.setTimeout(refresh, pollMs);
    }

    scrollLogsToBottom(region);
    if (stillChanging()) window.setTimeout(refresh, pollMs);
  });
})();
