// The office dashboard: poll the summary counts with If-None-Match every few seconds.
// 304: nothing changes on screen. 200: the numbers (elements with data-stat) are updated in place.
// Without JavaScript the server-rendered numbers stand, and a reload refreshes them.
(function () {
  "use strict";
  var state = window.minyiDashboard || (window.minyiDashboard = { polls: 0, notModified: 0, updated: 0, timer: null });
  if (state.timer) { clearTimeout(state.timer); state.timer = null; }
  var root = document.getElementById("dashboard");
  if (!root) return;
  var etag = root.getAttribute("data-etag") || "";
  var interval = parseInt(root.getAttribute("data-interval"), 10) || 5000;
  var src = root.getAttribute("data-src") || "/api/v1/stats/summary";

  function format(element, value) {
    if (element.getAttribute("data-format") === "percent") {
      return (Math.round((value || 0) * 1000) / 10) + "%";
    }
    return String(value);
  }

  function show(counts) {
    root.querySelectorAll("[data-stat]").forEach(function (element) {
      var name = element.getAttribute("data-stat");
      if (Object.prototype.hasOwnProperty.call(counts, name)) {
        var text = format(element, counts[name]);
        if (element.textContent !== text) element.textContent = text;
      }
    });
    var asOf = root.querySelector("[data-stat-as-of]");
    if (asOf && counts.as_of) asOf.textContent = counts.as_of.slice(0, 16).replace("T", " ");
  }

  function schedule() { state.timer = setTimeout(poll, interval); }

  function poll() {
    if (!document.body.contains(root)) { state.timer = null; return; }  // navigated away (hx-boost)
    var headers = { "Accept": "application/json" };
    if (etag) headers["If-None-Match"] = etag;
    fetch(src, { headers: headers, credentials: "same-origin", cache: "no-store" })
      .then(function (response) {
        state.polls += 1;
        root.setAttribute("data-polls", String(state.polls));
        if (response.status === 304) {
          state.notModified += 1;
          root.setAttribute("data-not-modified", String(state.notModified));
          return null;
        }
        if (!response.ok) return null;
        etag = response.headers.get("ETag") || etag;
        return response.json();
      })
      .then(function (counts) {
        if (counts) {
          show(counts);
          state.updated += 1;
          root.setAttribute("data-etag", etag);
          root.setAttribute("data-updated", String(state.updated));
        }
      })
      .catch(function () { /* offline for a moment: try again next time */ })
      .then(schedule);
  }

  schedule();
})();
