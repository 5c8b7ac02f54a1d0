// The office dashboard: poll the summary counts with If-None-Match every few seconds.
// 304: nothing changes on screen. 200: the numbers (elements with data-stat, "current.x" for the nested
// current counts) are updated in place, and each chart whose counts changed (data-depends names them) is
// fetched from its own stats endpoint, again with If-None-Match, and its rows rebuilt with the markup the
// server renders. So a poll that finds nothing new stays one 304, and charts cost a request only when
// their numbers moved. Without JavaScript the server-rendered numbers and tables stand; a reload refreshes.
(function () {
  "use strict";
  var state = window.minyiDashboard || (window.minyiDashboard = { polls: 0, notModified: 0, updated: 0, charts: 0, timer: null });
  if (state.timer) { clearTimeout(state.timer); state.timer = null; }
  var root = document.getElementById("dashboard");
  if (!root) return;
  var etag = root.getAttribute("data-etag") || "";
  var interval = parseInt(root.getAttribute("data-interval"), 10) || 5000;
  var src = root.getAttribute("data-src") || "/api/v1/stats/summary";
  var SVG = "http://www.w3.org/2000/svg";
  var seen = null;  // the summary counts the charts were last brought up to date with (null: as rendered)

  function format(element, value) {
    if (element.getAttribute("data-format") === "percent") {
      return (Math.round((value || 0) * 1000) / 10) + "%";
    }
    return String(value);
  }

  function lookup(counts, path) {
    var value = counts;
    var parts = path.split(".");
    for (var i = 0; i < parts.length; i += 1) {
      if (value === null || typeof value !== "object" || !Object.prototype.hasOwnProperty.call(value, parts[i])) return undefined;
      value = value[parts[i]];
    }
    return value;
  }

  function show(counts) {
    root.querySelectorAll("[data-stat]").forEach(function (element) {
      var value = lookup(counts, element.getAttribute("data-stat"));
      if (value !== undefined) {
        var text = format(element, value);
        if (element.textContent !== text) element.textContent = text;
      }
    });
    var asOf = root.querySelector("[data-stat-as-of]");
    if (asOf && counts.as_of) asOf.textContent = counts.as_of.slice(0, 16).replace("T", " ");
  }

  function rect(className, width) {
    var element = document.createElementNS(SVG, "rect");
    element.setAttribute("class", className);
    element.setAttribute("width", width + "%");
    element.setAttribute("height", "100%");
    element.setAttribute("rx", "4");
    return element;
  }

  // The rows of one chart, as the dashboard.html macro renders them.
  function draw(chart, items) {
    var series = (chart.getAttribute("data-series") || "").split(" ");
    var labelKey = chart.getAttribute("data-label-key");
    var tbody = chart.querySelector("tbody");
    var top = 0;
    items.forEach(function (item) { top = Math.max(top, item[series[0]] || 0); });
    top = top || 1;
    var rows = document.createDocumentFragment();
    items.forEach(function (item) {
      var tr = document.createElement("tr");
      var th = document.createElement("th");
      th.setAttribute("scope", "row");
      th.textContent = item[labelKey] || "（未指定）";
      tr.appendChild(th);
      var cell = document.createElement("td");
      cell.className = "bar-cell";
      var svg = document.createElementNS(SVG, "svg");
      svg.setAttribute("aria-hidden", "true");
      svg.setAttribute("focusable", "false");
      svg.setAttribute("class", "chart-bar");
      svg.appendChild(rect("track", 100));
      series.forEach(function (name, index) {
        svg.appendChild(rect(index ? "fill inner" : "fill", Math.round((item[name] || 0) * 1000 / top) / 10));
      });
      var value = document.createElement("b");
      value.textContent = String(item[series[0]] || 0);
      var line = document.createElement("span");
      line.className = "bar-line";
      line.appendChild(svg);
      line.appendChild(value);
      cell.appendChild(line);
      tr.appendChild(cell);
      series.slice(1).forEach(function (name) {
        var td = document.createElement("td");
        td.className = "num";
        td.textContent = String(item[name] || 0);
        tr.appendChild(td);
      });
      rows.appendChild(tr);
    });
    if (!items.length) {
      var empty = document.createElement("tr");
      empty.className = "empty";
      var td = document.createElement("td");
      td.className = "muted";
      td.setAttribute("colspan", String(1 + series.length));
      td.textContent = "暂无数据。";
      empty.appendChild(td);
      rows.appendChild(empty);
    }
    tbody.replaceChildren(rows);
  }

  function refresh(chart) {
    var headers = { "Accept": "application/json" };
    var tag = chart.getAttribute("data-etag");
    if (tag) headers["If-None-Match"] = tag;
    return fetch(chart.getAttribute("data-src"), { headers: headers, credentials: "same-origin", cache: "no-store" })
      .then(function (response) {
        if (!response.ok) return null;  // 304 included: the chart already shows these counts
        chart.setAttribute("data-etag", response.headers.get("ETag") || "");
        return response.json();
      })
      .then(function (body) {
        if (body && body.items) {
          draw(chart, body.items);
          state.charts += 1;
          root.setAttribute("data-charts-updated", String(state.charts));
        }
      });
  }

  // Charts whose counts (data-depends, names in the summary) differ from the last ones seen.
  function refreshCharts(counts) {
    var before = seen;
    seen = counts;
    var waits = [];
    document.querySelectorAll("[data-chart]").forEach(function (chart) {
      var depends = (chart.getAttribute("data-depends") || "").split(" ");
      var moved = before === null || depends.some(function (name) { return before[name] !== counts[name]; });
      if (moved) waits.push(refresh(chart).catch(function () { seen = null; }));
    });
    return Promise.all(waits);
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
          return refreshCharts(counts);
        }
        return null;
      })
      .catch(function () { /* offline for a moment: try again next time */ })
      .then(schedule);
  }

  schedule();
})();
