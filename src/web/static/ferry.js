// ferry deploy dashboard: small progressive enhancements, no framework. Every page works
// without it except the live parts (progress, skip, restore), which call the JSON API with the
// page's CSRF token.
"use strict";

const csrfToken = () => document.querySelector('meta[name="csrf-token"]')?.content ?? "";

async function api(method, path, body) {
  const options = { method, headers: { "X-CSRF-Token": csrfToken() }, credentials: "same-origin" };
  if (body !== undefined) {
    options.headers["Content-Type"] = "application/json";
    options.body = JSON.stringify(body);
  }
  const response = await fetch(path, options);
  const text = await response.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch (_) { data = { error: text }; }
  if (!response.ok) {
    throw new Error((data && data.error) || `${response.status} ${response.statusText}`);
  }
  return data;
}

// Filter a list by name as the user types.
function setupFilter() {
  const input = document.querySelector("[data-filter]");
  if (!input) return;
  const apply = () => {
    const needle = input.value.trim().toLowerCase();
    document.querySelectorAll(input.dataset.filter).forEach((item) => {
      item.hidden = !item.dataset.name.toLowerCase().includes(needle);
    });
  };
  input.addEventListener("input", apply);
}

// Copy buttons: data-copy="#input-id".
function setupCopy() {
  document.querySelectorAll("[data-copy]").forEach((button) => {
    button.addEventListener("click", async () => {
      const field = document.querySelector(button.dataset.copy);
      try {
        await navigator.clipboard.writeText(field.value);
      } catch (_) {
        field.select();
        document.execCommand("copy");
      }
      const label = button.textContent;
      button.textContent = "Copied";
      setTimeout(() => { button.textContent = label; }, 1500);
    });
  });
}

// Forms that ask first: data-confirm="question".
function setupConfirm() {
  document.querySelectorAll("form[data-confirm]").forEach((form) => {
    form.addEventListener("submit", (event) => {
      if (!window.confirm(form.dataset.confirm)) event.preventDefault();
    });
  });
}

// The dashboard reloads while a service is queued or deploying, until none is.
function setupServicePolling() {
  const list = document.querySelector("[data-poll-services]");
  if (!list) return;
  const busyNow = () => [...list.querySelectorAll(".state-busy")].map((li) => li.dataset.name).join(",");
  const before = busyNow();
  const tick = async () => {
    try {
      const data = await api("GET", "/api/services");
      const busy = data.services
        .filter((s) => s.last_deploy && ["queued", "running"].includes(s.last_deploy.status))
        .map((s) => s.name).sort().join(",");
      if (busy !== before.split(",").sort().join(",")) { window.location.reload(); return; }
    } catch (_) { /* keep trying */ }
    setTimeout(tick, 1500);
  };
  setTimeout(tick, 1500);
}

// Commit popovers are <details>: opening one closes the others.
function setupPopovers() {
  document.addEventListener("toggle", (event) => {
    const opened = event.target;
    if (!opened.matches || !opened.matches("details.popover") || !opened.open) return;
    document.querySelectorAll("details.popover[open]").forEach((d) => { if (d !== opened) d.open = false; });
  }, true);
}

const currentUser = () => document.querySelector(".who")?.textContent ?? "";

// The live progress of the service's running deploy: polls the API until it ends.
function setupProgress() {
  const live = document.getElementById("live");
  if (!live || !live.dataset.deploy) return;
  const id = live.dataset.deploy;
  const bar = document.getElementById("progress-bar");
  const show = (percent, files, current, status, phase) => {
    bar.style.width = `${percent}%`;
    document.getElementById("progress-phase").textContent = phase || "";
    document.getElementById("progress").setAttribute("aria-valuenow", String(percent));
    document.getElementById("progress-percent").textContent = `${percent}%`;
    document.getElementById("progress-files").textContent = files;
    document.getElementById("progress-current").textContent = current;
    const label = document.getElementById("live-status");
    label.textContent = status;
    label.className = `st st-${status}`;
  };
  const tick = async () => {
    let deploy;
    try {
      deploy = await api("GET", `/api/deploys/${id}`);
    } catch (_) {
      setTimeout(tick, 1000);
      return;
    }
    const p = deploy.progress;
    if (deploy.status === "running" && p) {
      const percent = p.files_total ? Math.floor((100 * p.files_done) / p.files_total) : 0;
      show(percent, `${p.files_done} / ${p.files_total} files`, p.current || "", "running", p.phase);
    } else if (deploy.status === "queued" || deploy.status === "running") {
      show(0, "waiting…", "", deploy.status);
    } else {
      const s = deploy.stats || {};
      const files = (s.files_added || 0) + (s.files_modified || 0) + (s.files_removed || 0);
      live.classList.add(deploy.status === "ok" ? "progress-done" : "progress-failed");
      show(100, `${files} files`, deploy.error || "", deploy.status === "ok" ? "done" : deploy.status);
      // Show the new state of the page (statistics, failed deploys) a moment later.
      setTimeout(() => window.location.reload(), 2500);
      return;
    }
    setTimeout(tick, 400);
  };
  tick();
}

// Skip a failed deploy, after a reason.
function setupSkip() {
  document.querySelectorAll("[data-skip]").forEach((button) => {
    button.addEventListener("click", async () => {
      const id = button.dataset.skip;
      const reason = window.prompt(`Skip deploy #${id}? A restore will no longer redeploy it. Why?`);
      if (reason === null) return;
      if (!reason.trim()) { window.alert("A skip needs a reason."); return; }
      button.disabled = true;
      try {
        await api("POST", `/api/deploys/${id}/skip`, { reason: reason.trim(), by: currentUser() });
        window.location.reload();
      } catch (error) {
        button.disabled = false;
        window.alert(`Cannot skip: ${error.message}`);
      }
    });
  });
}

// Restore (the failed deploys) or rollback (a chosen commit): a preview of the commits and the
// net file changes, then the run.
function setupPreviews() {
  const open = document.getElementById("restore");
  const dialog = document.getElementById("restore-dialog");
  if (!open || !dialog) return;
  const service = encodeURIComponent(open.dataset.service);
  const run = document.getElementById("restore-run");
  const error = document.getElementById("restore-error");
  const fail = (message) => { error.textContent = message; error.hidden = false; };
  let queue = null;
  document.getElementById("restore-cancel").addEventListener("click", () => dialog.close());
  const show = async (title, previewPath, runPath, body) => {
    error.hidden = true;
    run.disabled = true;
    queue = { path: runPath, body };
    document.getElementById("restore-title").textContent = title;
    document.getElementById("restore-commits").replaceChildren();
    document.getElementById("restore-files").replaceChildren();
    document.getElementById("restore-summary").textContent = "Loading the preview…";
    dialog.showModal();
    try {
      const preview = await api("GET", previewPath);
      const from = preview.deployed ? preview.deployed.slice(0, 10) : "nothing";
      let summary = `Deploys ${preview.to.slice(0, 10)} over ${from} (read from the ${preview.deployed_source})`;
      if (preview.deploys.length) {
        summary += `, covering failed deploy${preview.deploys.length === 1 ? "" : "s"} ${preview.deploys.map((d) => "#" + d).join(", ")}`;
      }
      document.getElementById("restore-summary").textContent = `${summary}.`;
      const commits = document.getElementById("restore-commits");
      preview.commits.forEach((c) => {
        const li = document.createElement("li");
        const code = document.createElement("code");
        code.textContent = c.id.slice(0, 10);
        li.append(code, ` ${c.message} — ${c.author}`);
        commits.append(li);
      });
      const files = document.getElementById("restore-files");
      preview.changes.forEach((f) => {
        const li = document.createElement("li");
        li.className = f.change;
        li.textContent = `${f.change} ${f.path}`;
        files.append(li);
      });
      if (!preview.changes.length) files.append(Object.assign(document.createElement("li"), { textContent: "no file changes" }));
      if (preview.active_deploy) {
        fail(`Deploy #${preview.active_deploy} is running; try again when it has finished.`);
      } else {
        run.disabled = false;
      }
    } catch (e) {
      fail(`No preview: ${e.message}`);
    }
  };
  open.addEventListener("click", () =>
    show("Restore the failed deploys", `/api/services/${service}/restore`, `/api/services/${service}/restore`, {}));
  document.querySelectorAll("[data-rollback]").forEach((button) => {
    const commit = button.dataset.rollback;
    button.addEventListener("click", () =>
      show(`Deploy ${commit.slice(0, 10)} again`, `/api/services/${service}/rollback/${commit}`,
        `/api/services/${service}/rollback`, { commit }));
  });
  run.addEventListener("click", async () => {
    run.disabled = true;
    try {
      await api("POST", queue.path, queue.body);
      window.location.reload();
    } catch (e) {
      fail(`Refused: ${e.message}`);
    }
  });
}

// "Add the webhook through the host's API".
function setupAddWebhook() {
  document.querySelectorAll("[data-add-webhook]").forEach((button) => {
    const result = button.parentElement.querySelector("[data-add-webhook-result]");
    button.addEventListener("click", async () => {
      button.disabled = true;
      result.textContent = "asking the git host…";
      try {
        const data = await api("POST", `/api/services/${encodeURIComponent(button.dataset.addWebhook)}/webhook`, {});
        result.textContent = (data && (data.message || data.status)) || "webhook added";
      } catch (e) {
        result.textContent = `not added: ${e.message}`;
        button.disabled = false;
      }
    });
  });
}

document.addEventListener("DOMContentLoaded", () => {
  setupFilter();
  setupCopy();
  setupConfirm();
  setupServicePolling();
  setupPopovers();
  setupProgress();
  setupSkip();
  setupPreviews();
  setupAddWebhook();
  if (window.ferryPage) window.ferryPage();
});
