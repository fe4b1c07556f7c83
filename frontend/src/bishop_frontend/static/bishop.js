// Every htmx request carries the page's CSRF token: the browser app refuses state changes
// without it (see bishop_frontend/security.py).
document.addEventListener("htmx:configRequest", function (event) {
  var meta = document.querySelector('meta[name="csrf-token"]');
  if (meta) event.detail.headers["X-CSRF-Token"] = meta.getAttribute("content");
});
