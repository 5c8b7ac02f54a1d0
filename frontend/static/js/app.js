// Minyi pages: htmx sends this page's CSRF token on every request it makes; toasts fade away.
(function () {
  "use strict";
  document.addEventListener("htmx:configRequest", function (event) {
    var meta = document.querySelector('meta[name="csrf-token"]');
    if (meta) event.detail.headers["X-CSRF-Token"] = meta.content;
  });
  // An error answer (422, 403…) still carries a message to show: let htmx swap it (into #toasts).
  document.addEventListener("htmx:beforeSwap", function (event) {
    var status = event.detail.xhr.status;
    if (status >= 400 && status < 600) {
      event.detail.shouldSwap = true;
      event.detail.isError = false;
    }
  });
  document.addEventListener("htmx:afterSwap", function (event) {
    if (event.detail.target && event.detail.target.id === "toasts") {
      var toast = event.detail.target.lastElementChild;
      if (toast) setTimeout(function () { toast.remove(); }, 6000);
    }
  });
})();
