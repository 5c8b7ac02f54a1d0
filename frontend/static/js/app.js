// Minyi pages: htmx sends this page's CSRF token on every request it makes; toasts fade away; signing
// out clears what this user left on the phone.
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

  // Signing out on a shared phone leaves nothing of this user offline: every cache of /rep pages (any
  // version: the service worker names its cache after its assets), this user's forms still waiting in
  // offline.js's queue (asked first when any is unsent: they are what the residents said) and the
  // remembered source. The names follow offline.js and sw.js.
  var OUTBOX_DB = "minyi-rep", OUTBOX = "outbox", PAGE_CACHES = "minyi-rep-", SOURCE_KEY = "minyi.rep.source";
  var CODES = "minyi.rep.codes:";

  function outbox(mode, action) {
    return new Promise(function (resolve, reject) {
      if (!window.indexedDB) return resolve([]);
      var open = indexedDB.open(OUTBOX_DB, 1);
      open.onupgradeneeded = function () { open.result.createObjectStore(OUTBOX, { keyPath: "key" }); };
      open.onerror = function () { reject(open.error); };
      open.onsuccess = function () {
        var database = open.result, tx = database.transaction(OUTBOX, mode), result = action(tx.objectStore(OUTBOX));
        tx.oncomplete = function () { database.close(); resolve(result && "result" in result ? result.result : undefined); };
        tx.onerror = tx.onabort = function () { database.close(); reject(tx.error); };
      };
    });
  }

  function waitingKeys(user) {
    return outbox("readonly", function (store) { return store.getAll(); }).then(function (all) {
      return (all || []).filter(function (r) { return String(r.user) === String(user); })
        .map(function (r) { return r.key; });
    });
  }

  function forget(keys, user) {
    var pages = window.caches ? caches.keys().then(function (names) {
      return Promise.all(names.filter(function (n) { return n.indexOf(PAGE_CACHES) === 0; })
        .map(function (n) { return caches.delete(n); }));
    }) : Promise.resolve();
    var queue = keys.length ? outbox("readwrite", function (store) {
      keys.forEach(function (key) { store.delete(key); });
    }) : Promise.resolve();
    try {
      localStorage.removeItem(SOURCE_KEY);
      localStorage.removeItem(CODES + user);  // today's numbers and codes (offline.js)
    } catch (e) { /* no storage */ }
    return Promise.all([pages.catch(function () {}), queue.catch(function () {})]);
  }

  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!form || !form.getAttribute || form.getAttribute("action") !== "/logout" || form.hasAttribute("data-cleared")) return;
    event.preventDefault();
    event.stopPropagation();  // capture phase: htmx's boost never sees it; the form is posted below, plainly
    waitingKeys(form.getAttribute("data-user")).catch(function () { return []; }).then(function (keys) {
      if (keys.length && !window.confirm("手机上还有 " + keys.length + " 条意见没有发送出去。退出会把它们从这部手机上删除，确定退出吗？")) {
        return false;
      }
      return forget(keys, form.getAttribute("data-user")).then(function () { return true; });
    }).then(function (go) {
      if (!go) return;
      form.setAttribute("data-cleared", "");
      form.submit();
    });
  }, true);

  // A page shown with messages (a form that could not be taken): its first wrong field gets the focus and
  // comes into view; its message is linked to it by aria-describedby (macros.html).
  function focusFirstProblem(root) {
    var bad = (root || document).querySelector('[aria-invalid="true"]');
    if (!bad || bad.closest("[hidden]")) return;
    var details = bad.closest("details");
    if (details) details.open = true;
    bad.focus({ preventScroll: true });
    bad.scrollIntoView({ block: "center" });
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", function () { focusFirstProblem(); });
  else focusFirstProblem();
  // After htmx's boost swapped a whole page in (its own focus handling done first).
  document.addEventListener("htmx:afterSettle", function (event) {
    if (event.detail && event.detail.boosted) setTimeout(function () { focusFirstProblem(); }, 0);
  });

  // A receipt's QR opens /track#no=…&code=…: the fragment never leaves the phone. Fill the form from it,
  // take the code out of the address bar, and ask once.
  var trackForm = document.querySelector("form.track-form");
  if (trackForm && location.hash.length > 1) {
    var asked = new URLSearchParams(location.hash.slice(1));
    history.replaceState(null, "", location.pathname + location.search);
    if (asked.get("no") && asked.get("code")) {
      trackForm.elements.no.value = asked.get("no");
      trackForm.elements.code.value = asked.get("code");
      if (trackForm.requestSubmit) trackForm.requestSubmit(); else trackForm.submit();
    }
  }
})();
