// Every htmx request carries the page's CSRF token: the browser app refuses state changes
// without it (see bishop_frontend/security.py).
document.addEventListener("htmx:configRequest", function (event) {
  var meta = document.querySelector('meta[name="csrf-token"]');
  if (meta) event.detail.headers["X-CSRF-Token"] = meta.getAttribute("content");
});

// Dark mode: the system's choice unless the user picked one with the toggle (kept in this
// browser). Set before the first paint, so a dark page never flashes light.
(function () {
  var chosen = null;
  try { chosen = localStorage.getItem("bishop-theme"); } catch (e) {}
  if (chosen === "dark" || chosen === "light") document.documentElement.dataset.theme = chosen;
})();

function bishopIsDark() {
  var chosen = document.documentElement.dataset.theme;
  if (chosen) return chosen === "dark";
  return window.matchMedia && window.matchMedia("(prefers-color-scheme: dark)").matches;
}

function bishopShowTheme() {
  document.querySelectorAll(".theme-toggle").forEach(function (button) {
    button.setAttribute("aria-pressed", bishopIsDark() ? "true" : "false");
  });
}

function bishopToggleTheme() {
  var next = bishopIsDark() ? "light" : "dark";
  document.documentElement.dataset.theme = next;
  try { localStorage.setItem("bishop-theme", next); } catch (e) {}
  bishopShowTheme();
}

// The document's language follows the content: an avatar's pages speak the avatar's.
function bishopSyncLanguage() {
  var main = document.getElementById("main");
  if (main && main.getAttribute("lang")) document.documentElement.lang = main.getAttribute("lang");
}

htmx.onLoad(function () {
  bishopShowTheme();
  bishopSyncLanguage();
});

// A navigation replaces #main: messages about the page left behind go, and focus moves to
// the new page's heading, as a screen reader user expects after a page change (unless the
// page puts it somewhere itself, like a chat's message box).
document.addEventListener("htmx:beforeSwap", function (event) {
  if (event.detail.target && event.detail.target.id === "main") bishopClearToasts();
});
document.addEventListener("htmx:historyRestore", bishopClearToasts);

function bishopClearToasts() {
  var container = document.getElementById("fh-toast-container");
  if (container) container.replaceChildren();
}

document.addEventListener("htmx:afterSettle", function (event) {
  var main = event.target;
  var trigger = event.detail.requestConfig && event.detail.requestConfig.elt;
  if (!main || main.id !== "main" || !trigger || !trigger.hasAttribute("hx-push-url")) return;
  if (main.querySelector("[autofocus]")) return;
  var heading = main.querySelector("h1");
  if (!heading) return;
  heading.setAttribute("tabindex", "-1");
  heading.focus();
});

// Toasts can be dismissed by click or with Escape.
document.addEventListener("click", function (event) {
  var toast = event.target.closest && event.target.closest(".fh-toast");
  if (toast) toast.remove();
});
document.addEventListener("keydown", function (event) {
  if (event.key === "Escape") bishopClearToasts();
});
