// fresco dashboard: follows the page's server-sent events (body[data-live])
// and applies them in place. Without this script every page still works;
// it only stops updating itself.
"use strict";

function setText(scope, role, text) {
  const node = scope.querySelector(`[data-role="${role}"]`);
  if (node && node.textContent !== text) node.textContent = text;
}

function applyJob(scope, job) {
  const bar = scope.querySelector('progress[data-role="progress"]');
  if (bar) { bar.value = job.percent; bar.textContent = `${job.percent}%`; }
  setText(scope, "percent", `${job.percent}%`);
  const state = scope.querySelector('[data-role="state"]');
  if (state) { state.textContent = job.state; state.dataset.state = job.state; }
  const counts = scope.querySelector('[data-role="counts"]');
  if (counts) {
    const total = counts.textContent.match(/ of \d+$/);
    counts.textContent = job.counts + (total ? total[0] : "");
  }
  setText(scope, "eta", job.eta);
  setText(scope, "rate", `${job.rate} images/min`);
  if (job.finished) {
    for (const node of scope.querySelectorAll('[data-role="while-active"]')) node.hidden = true;
    for (const node of document.querySelectorAll('#job ~ .actions [data-role="while-active"]')) node.hidden = true;
  }
  const waiting = scope.querySelector('[data-role="waiting"]');
  if (waiting) {
    waiting.hidden = !job.waiting;
    setText(scope, "waiting-reason", job.waiting);
  }
}

function addImages(images) {
  const gallery = document.getElementById("gallery");
  if (!gallery) return;
  for (const image of images) {
    if (gallery.querySelector(`li[data-key="${CSS.escape(image.key)}"]`)) continue;
    const item = document.createElement("li");
    item.dataset.key = image.key;
    item.dataset.order = image.order;
    const link = document.createElement("a");
    link.href = image.href;
    const img = document.createElement("img");
    img.src = image.src; img.alt = image.alt; img.loading = "lazy";
    img.width = 128; img.height = 128;
    link.appendChild(img);
    const caption = document.createElement("span");
    caption.className = "caption";
    caption.textContent = image.caption;
    item.append(link, caption);
    const after = [...gallery.children].find((li) => Number(li.dataset.order) > image.order);
    gallery.insertBefore(item, after || null);
  }
  const empty = document.querySelector('[data-role="gallery-empty"]');
  if (empty) empty.hidden = gallery.children.length > 0;
}

function follow(url) {
  const source = new EventSource(url);
  source.addEventListener("jobs", (e) => {
    for (const job of JSON.parse(e.data)) {
      const row = document.querySelector(`tr[data-job-id="${job.id}"]`);
      if (row) applyJob(row, job);
    }
  });
  source.addEventListener("job", (e) => {
    const job = JSON.parse(e.data);
    const section = document.querySelector(`#job[data-job-id="${job.id}"]`);
    if (section) applyJob(section, job);
  });
  source.addEventListener("images", (e) => addImages(JSON.parse(e.data)));
  source.addEventListener("done", () => {
    source.close();
    document.body.dataset.finished = "true";
  });
  source.addEventListener("error", (e) => {
    if (e.data) console.warn("fresco live stream:", e.data);
  });
}

document.addEventListener("DOMContentLoaded", () => {
  const live = document.body.dataset.live;
  if (live) follow(live);
});
