// The upload form of the patient page: several files at once with a progress bar, then one status
// line per file that follows its scan (waiting, analysing, the result, or why it was refused).
// The status is read from the file's result card, which htmx keeps up to date (_scan_card.html),
// so the page has one source of truth. Without this script the form posts as a plain form.
(function () {
  const form = document.querySelector("form[data-upload]");
  if (!form) return;
  const input = form.querySelector("input[type=file]");
  const button = form.querySelector("button[type=submit]");
  const status = form.querySelector(".upload-status");
  const bar = status.querySelector("progress");
  const list = status.querySelector(".upload-files");
  const history = document.querySelector(".history");

  function line(name, text, state) {
    const item = document.createElement("li");
    item.className = "upload-file state-" + state;
    const label = document.createElement("span");
    label.className = "name";
    label.textContent = name;
    const said = document.createElement("span");
    said.className = "said";
    said.textContent = text;
    item.append(label, " ", said);
    list.append(item);
    return item;
  }

  function say(item, text, state) {
    item.className = "upload-file state-" + state;
    item.querySelector(".said").textContent = text;
  }

  // What a result card says, in one line for the file's status.
  function cardStatus(card) {
    if (card.classList.contains("status-queued")) return ["Uploaded; waiting for analysis", "waiting"];
    if (card.classList.contains("status-processing")) return ["Analysing…", "waiting"];
    if (card.classList.contains("status-failed")) {
      const reason = card.querySelector(".failed");
      return [reason ? reason.textContent.trim() : "Analysis failed.", "refused"];
    }
    const result = card.querySelector(".result");
    return ["Done: " + (result ? result.textContent.replace(/\s+/g, " ").trim() : "result ready"), "done"];
  }

  function follow(item, scanId) {
    function update() {
      const card = document.getElementById("scan-" + scanId);
      if (!card) return;
      const [text, state] = cardStatus(card);
      say(item, text, state);
    }
    update();
    document.body.addEventListener("htmx:afterSettle", update);
  }

  async function addCard(url) {
    const response = await fetch(url, { credentials: "same-origin" });
    if (!response.ok) return;
    const holder = document.createElement("div");
    holder.innerHTML = (await response.text()).trim();
    const card = holder.firstElementChild;
    history.prepend(card);
    if (window.htmx) window.htmx.process(card);
  }

  function finished(xhr) {
    let answer = null;
    try { answer = JSON.parse(xhr.responseText); } catch (error) { answer = null; }
    if (!answer || xhr.responseURL && new URL(xhr.responseURL).pathname !== new URL(form.action).pathname) {
      window.location.reload();  // the session ended or a refusal page came back: show it
      return;
    }
    list.replaceChildren();
    answer.refused.forEach(function (reason) { line("", reason, "refused"); });
    // "No X-rays yet" goes as soon as one is accepted, not when its card has arrived.
    const empty = history.querySelector(":scope > p.muted");
    if (empty && answer.files.some(function (file) { return !file.refused; })) empty.remove();
    const cards = [];
    answer.files.forEach(function (file) {
      if (file.refused) {
        // A refusal of one of several files names it already ("File 2 (x.dcm): ..."): not twice.
        line(file.refused.includes(file.name) ? "" : file.name, "Not uploaded: " + file.refused, "refused");
        if (file.identity) form.querySelector("details.identity-confirm").open = true;  // the confirmation it needs
      } else {
        const item = line(file.name, "Uploaded", "waiting");
        cards.push(addCard(file.card_url).then(function () { follow(item, file.scan); }));
      }
    });
    Promise.all(cards).then(function () { button.disabled = false; input.value = ""; });
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    const files = Array.from(input.files);
    status.hidden = false;
    bar.value = 0;
    list.replaceChildren();
    files.forEach(function (file) { line(file.name, "Sending…", "waiting"); });
    button.disabled = true;
    const xhr = new XMLHttpRequest();
    xhr.open("POST", form.action);
    xhr.setRequestHeader("Accept", "application/json");
    xhr.upload.addEventListener("progress", function (progress) {
      if (progress.lengthComputable) bar.value = Math.round((100 * progress.loaded) / progress.total);
    });
    xhr.addEventListener("load", function () { bar.value = 100; finished(xhr); });
    xhr.addEventListener("error", function () {
      button.disabled = false;
      list.replaceChildren();
      line("", "The upload did not reach the portal (network error); nothing was stored. Try again.", "refused");
    });
    xhr.send(new FormData(form));
  });
})();
