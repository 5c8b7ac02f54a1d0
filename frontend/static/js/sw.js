// Minyi service worker (scope /rep): the entry page opens at a stall with no signal.
// /rep pages: network first, the last good copy when offline. Styles and scripts: the cached copy at once,
// refreshed in the background. POSTs are never touched (offline.js keeps unsent forms in IndexedDB).
"use strict";
// Named after the content of this file and of SHELL's files (GET /sw.js fills it in): a changed script
// or style is a new cache, the old one is deleted on activation. Sign-out deletes every minyi-rep-* cache.
var CACHE = "minyi-rep-__ASSETS_VERSION__";
var SHELL = ["/rep", "/static/css/app.css", "/static/js/app.js", "/static/js/capture.js", "/static/js/offline.js",
             "/static/vendor/htmx/htmx.min.js"];

self.addEventListener("install", function (event) {
  event.waitUntil(caches.open(CACHE).then(function (cache) {
    return Promise.all(SHELL.map(function (url) {
      return fetch(new Request(url, { credentials: "same-origin" })).then(function (res) {
        if (res.ok && !res.redirected) return cache.put(url, res);
      }).catch(function () {});
    }));
  }).then(function () { return self.skipWaiting(); }));
});

self.addEventListener("activate", function (event) {
  event.waitUntil(caches.keys().then(function (keys) {
    return Promise.all(keys.filter(function (k) { return k.indexOf("minyi-rep-") === 0 && k !== CACHE; })
      .map(function (k) { return caches.delete(k); }));
  }).then(function () { return self.clients.claim(); }));
});

function storable(res) {
  return res && res.ok && !res.redirected && res.type === "basic" &&
    (res.headers.get("Cache-Control") || "").indexOf("no-store") === -1;
}

self.addEventListener("fetch", function (event) {
  var request = event.request;
  if (request.method !== "GET") return;
  var url = new URL(request.url);
  if (url.origin !== self.location.origin) return;

  if (request.mode === "navigate" && (url.pathname === "/rep" || url.pathname.indexOf("/rep/") === 0)) {
    event.respondWith(fetch(request).then(function (res) {
      if (storable(res)) {
        var copy = res.clone();
        caches.open(CACHE).then(function (cache) { cache.put(url.pathname, copy); });
      }
      return res;
    }).catch(function () {
      return caches.match(url.pathname, { ignoreVary: true }).then(function (hit) {
        return hit || caches.match("/rep", { ignoreVary: true });
      }).then(function (hit) {
        return hit || new Response("<h1>没有网络</h1><p>请联网后再打开此页。</p>",
          { status: 503, headers: { "Content-Type": "text/html; charset=utf-8" } });
      });
    }));
    return;
  }

  if (url.pathname.indexOf("/static/") === 0) {
    event.respondWith(caches.open(CACHE).then(function (cache) {
      return cache.match(url.pathname, { ignoreVary: true }).then(function (cached) {
        var network = fetch(request).then(function (res) {
          if (storable(res)) cache.put(url.pathname, res.clone());
          return res;
        });
        if (cached) {
          event.waitUntil(network.catch(function () {}));
          return cached;
        }
        return network;
      });
    }));
  }
});
