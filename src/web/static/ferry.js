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

// Commit popovers: a button toggles the list beside it.
function setupPopovers() {
  document.addEventListener("click", (event) => {
    const toggle = event.target.closest(".commits-toggle");
    document.querySelectorAll(".popover.open").forEach((p) => {
      if (!toggle || p !== toggle.parentElement) p.classList.remove("open");
    });
    if (toggle) toggle.parentElement.classList.toggle("open");
  });
}

document.addEventListener("DOMContentLoaded", () => {
  setupFilter();
  setupCopy();
  setupConfirm();
  setupServicePolling();
  setupPopovers();
  if (window.ferryPage) window.ferryPage();
});
