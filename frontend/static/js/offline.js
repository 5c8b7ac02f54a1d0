// Minyi representatives: nothing typed at the stall is lost when the network is.
//
// Each submitted form gets its own Idempotency-Key, is written to IndexedDB first, then sent; it leaves
// IndexedDB only once the server answered 201 (or refused it as invalid, 422). Network failures keep it
// and it is sent again on the `online` event, on page load and every 20 s; the server writes a key once,
// so a retry after a lost answer never makes a second form. "N 条待发送" shows what is still on the phone.
// A form's photos (already shrunk by capture.js) are kept in the same record and sent with it, once.
(function () {
  "use strict";
  var DB_NAME = "minyi-rep";  // app.js's sign-out reads the same store: keep the names in step
  var STORE = "outbox";
  var SOURCE_KEY = "minyi.rep.source";
  var RETRY_MS = 20000;
  var syncing = null;

  function uuid() {
    if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
    var b = crypto.getRandomValues(new Uint8Array(16));
    b[6] = (b[6] & 15) | 64; b[8] = (b[8] & 63) | 128;
    var h = Array.prototype.map.call(b, function (x) { return (x + 256).toString(16).slice(1); }).join("");
    return h.slice(0, 8) + "-" + h.slice(8, 12) + "-" + h.slice(12, 16) + "-" + h.slice(16, 20) + "-" + h.slice(20);
  }

  var dbPromise = null;
  function db() {
    if (!dbPromise) {
      dbPromise = new Promise(function (resolve, reject) {
        var open = indexedDB.open(DB_NAME, 1);
        open.onupgradeneeded = function () { open.result.createObjectStore(STORE, { keyPath: "key" }); };
        open.onsuccess = function () { resolve(open.result); };
        open.onerror = function () { dbPromise = null; reject(open.error); };
      });
    }
    return dbPromise;
  }

  function request(mode, action) {
    return db().then(function (database) {
      return new Promise(function (resolve, reject) {
        var tx = database.transaction(STORE, mode);
        var result = action(tx.objectStore(STORE));
        tx.oncomplete = function () { resolve(result && "result" in result ? result.result : undefined); };
        tx.onerror = tx.onabort = function () { reject(tx.error); };
      });
    });
  }

  function entryForm() { return document.getElementById("rep-form"); }
  function currentUser() { var f = entryForm(); return f ? f.getAttribute("data-user") : null; }

  function waiting() {  // this user's forms still on the phone, oldest first
    var user = currentUser();
    return request("readonly", function (store) { return store.getAll(); }).then(function (all) {
      return (all || []).filter(function (r) { return r.user === user; })
        .sort(function (a, b) { return a.created - b.created; });
    });
  }

  // Forms the server refused (a mistyped phone number…): kept on the phone, word for word, until the
  // representative puts them back into the entry form to correct them. Nothing typed is thrown away.
  function showRefused(list) {
    var refused = list.filter(function (r) { return r.refused; });
    var box = document.getElementById("rep-refused");
    if (!box) {
      var anchor = document.getElementById("pending-count");
      if (!anchor || !refused.length) return;
      box = document.createElement("ul");
      box.id = "rep-refused";
      box.className = "list rep-refused";
      anchor.parentNode.insertBefore(box, anchor.nextSibling);
    }
    box.innerHTML = "";
    refused.forEach(function (record) {
      var li = document.createElement("li");
      li.setAttribute("data-key", record.key);
      var text = document.createElement("p");
      text.className = "error";
      text.textContent = "未能提交（" + record.refused + "）：" + contentOf(record);
      var button = document.createElement("button");
      button.type = "button";
      button.className = "button";
      button.textContent = "放回表单修改";
      button.addEventListener("click", function () { restore(record); });
      li.appendChild(text);
      li.appendChild(button);
      box.appendChild(li);
    });
    box.hidden = refused.length === 0;
  }

  function restore(record) {
    var form = entryForm();
    if (!form) return;
    // A checkbox is in the record only when it was ticked (FormData leaves unticked ones out): untick
    // them all first, so 同意公开 comes back exactly as the representative left it.
    Array.prototype.forEach.call(form.querySelectorAll('input[type="checkbox"]'), function (c) { c.checked = false; });
    record.fields.forEach(function (pair) {
      var input = form.elements[pair[0]];
      if (!input) return;
      if (input instanceof RadioNodeList || (input.length && input[0] && input[0].type === "radio")) {
        Array.prototype.forEach.call(input, function (r) { r.checked = r.value === pair[1]; });
      } else if (input.type === "checkbox") {
        input.checked = input.value === pair[1];
      } else {
        input.value = pair[1];
      }
    });
    if (window.minyiCapture) window.minyiCapture.restore(form, record.photos || []);
    var more = form.querySelector("details.rep-more");
    if (more) more.open = true;
    request("readwrite", function (store) { store.delete(record.key); }).then(showPending);
    if (form.elements.content) form.elements.content.focus();
  }

  function showPending() {
    return waiting().then(function (all) {
      showRefused(all);
      var list = all.filter(function (r) { return !r.refused; });
      var el = document.getElementById("pending-count");
      if (!el) return list.length;
      el.textContent = list.length + " 条待发送";
      el.hidden = list.length === 0;
      el.setAttribute("data-count", String(list.length));
      return list.length;
    });
  }

  function note(text, cls) {
    var box = document.getElementById("rep-receipts");
    if (!box) return;
    var li = document.createElement("li");
    li.className = cls || "";
    li.textContent = text;
    box.insertBefore(li, box.firstChild);
    while (box.children.length > 5) box.removeChild(box.lastChild);
  }

  // The record as the plain form would post it: urlencoded, or multipart when it carries photos.
  function bodyOf(record) {
    if (!record.photos || !record.photos.length) return new URLSearchParams(record.fields);
    var body = new FormData();
    record.fields.forEach(function (pair) { body.append(pair[0], pair[1]); });
    record.photos.forEach(function (photo, i) { body.append("photos", photo, photo.name || "photo-" + (i + 1) + ".jpg"); });
    return body;
  }

  function send(record) {
    var meta = document.querySelector('meta[name="csrf-token"]');
    return fetch("/rep/forms", {
      method: "POST",
      credentials: "same-origin",
      redirect: "manual",  // an expired session answers with a redirect to /login: keep the form
      headers: {
        "X-CSRF-Token": meta ? meta.content : "",
        "Idempotency-Key": record.key,
        "Accept": "application/json",
      },
      body: bodyOf(record),
    });
  }

  function refreshToday() {
    var today = document.getElementById("today");
    if (!today) return;
    fetch("/rep", { credentials: "same-origin", headers: { "HX-Request": "true", "HX-Target": "today" } })
      .then(function (res) { return res.ok ? res.text() : null; })
      .then(function (html) {
        if (!html) return;
        var holder = document.createElement("div");
        holder.innerHTML = html;
        var fresh = holder.querySelector("#today");
        if (fresh) {
          today.replaceWith(fresh);
          if (window.htmx) window.htmx.process(fresh);
          annotate();
        }
      })
      .catch(function () {});
  }

  // Send every waiting form once; stop at the first network failure (the next try comes soon).
  function sendAll() {
    var sent = 0;
    return waiting().then(function (all) {
      var chain = Promise.resolve(true);
      all.filter(function (r) { return !r.refused; }).forEach(function (record) {
        chain = chain.then(function (go) {
          if (!go) return false;
          return send(record).then(function (res) {
            if (res.status === 201) {
              return res.json().catch(function () { return {}; }).then(function (body) {
                sent += 1;
                var slip = body.slip || {};
                remember({ no: body.tracking_no, code: body.verification_code, snippet: contentOf(record),
                           phone: maskPhone(fieldOf(record, "submitter_phone")), qr: slip.qr, url: slip.track_url });
                note("已发送：编号 " + (body.tracking_no || "") +
                     (body.verification_code ? "，查询码 " + body.verification_code : "") +
                     (body.photos ? "，照片 " + body.photos + " 张" : ""), "ok");
                return request("readwrite", function (store) { store.delete(record.key); }).then(function () { return true; });
              });
            }
            if (res.status === 422) {  // the server will never take it as it is: keep it for correcting
              return res.json().catch(function () { return {}; }).then(function (body) {
                var errors = body.errors || {};
                record.refused = Object.keys(errors).map(function (k) { return errors[k]; }).join(" ") || "内容不符合要求";
                return request("readwrite", function (store) { store.put(record); }).then(function () { return true; });
              });
            }
            return false;  // 403 (page expired), 409, 5xx, a redirect to /login: keep it, try later
          }, function () { return false; });
        });
      });
      return chain;
    }).then(function () {
      return showPending();
    }).then(function (count) {
      if (sent) refreshToday();
      return count;
    });
  }

  // --- codes stay with their forms (issue 16.2) ----------------------------------------------------------
  // Every form this phone sent today, with its number, code, first words, the resident's masked phone and
  // its receipt slip, kept in localStorage per user until the day ends (app.js's sign-out removes it), so
  // 今天我录入的 shows each code beside its form after a reload and offline, and the slip can be shown
  // again for the resident to photograph or printed.
  var CODES = "minyi.rep.codes:";  // + the user's id: app.js's sign-out removes the same key

  function localDay() {
    var d = new Date();
    return d.getFullYear() + "-" + (d.getMonth() + 1) + "-" + d.getDate();
  }

  function loadCodes() {
    try {
      var data = JSON.parse(localStorage.getItem(CODES + currentUser()) || "null");
      if (data && data.day === localDay() && data.items) return data;
    } catch (e) { /* no storage, or not ours */ }
    return { day: localDay(), items: {} };  // a new day starts empty: yesterday's codes are dropped
  }

  function remember(item) {
    if (!item || !item.no || !item.code || !currentUser()) return;
    var data = loadCodes(), old = data.items[item.no] || {};
    data.items[item.no] = {
      no: item.no, code: item.code, snippet: item.snippet || old.snippet || "", phone: item.phone || old.phone || "",
      qr: item.qr || old.qr || "", url: item.url || old.url || "", at: old.at || Date.now(),
    };
    try { localStorage.setItem(CODES + currentUser(), JSON.stringify(data)); } catch (e) { /* full: shown once */ }
  }

  function maskPhone(phone) {
    var p = String(phone || "").replace(/\s/g, "");
    if (!p) return "";
    if (p.length >= 11) return p.slice(0, 3) + "****" + p.slice(-4);
    return p.slice(0, 1) + "****" + p.slice(-1);
  }

  function fieldOf(record, name) {
    for (var i = 0; i < record.fields.length; i++) if (record.fields[i][0] === name) return record.fields[i][1];
    return "";
  }

  function codeLine(item) {
    var line = document.createElement("p"), code = document.createElement("b"), show = document.createElement("button");
    line.className = "rep-code";
    line.appendChild(document.createTextNode("查询码 "));
    code.textContent = item.code;
    line.appendChild(code);
    if (item.phone) line.appendChild(document.createTextNode(" · " + item.phone));
    show.type = "button";
    show.className = "link";
    show.textContent = "回执";
    show.setAttribute("data-show-slip", item.no);
    line.appendChild(document.createTextNode(" "));
    line.appendChild(show);
    return line;
  }

  // 今天我录入的: the code beside each form the server lists, and the forms it does not list yet (a page
  // from the phone's cache, offline) as rows of their own.
  function annotate() {
    var today = document.getElementById("today");
    if (!today || !currentUser()) return;
    var items = loadCodes().items, seen = {};
    Array.prototype.forEach.call(today.querySelectorAll("li[data-tracking-no]"), function (li) {
      var no = li.getAttribute("data-tracking-no");
      seen[no] = true;
      var old = li.querySelector(".rep-code");
      if (old) old.remove();
      if (items[no]) li.insertBefore(codeLine(items[no]), li.children[1] || null);
    });
    var missing = Object.keys(items).filter(function (no) { return !seen[no]; })
      .sort(function (a, b) { return items[b].at - items[a].at; });
    if (!missing.length) return;
    var list = today.querySelector("ul.list");
    if (!list) {
      list = document.createElement("ul");
      list.className = "list";
      var empty = today.querySelector("p.muted");
      if (empty) empty.remove();
      today.appendChild(list);
    }
    missing.reverse().forEach(function (no) {
      var item = items[no], li = document.createElement("li"), row = document.createElement("div");
      var number = document.createElement("b"), state = document.createElement("span"), words = document.createElement("p");
      li.className = "local";
      li.setAttribute("data-tracking-no", no);
      row.className = "rep-row";
      number.textContent = no;
      state.className = "status submitted";
      state.textContent = "已发送";
      row.appendChild(number);
      row.appendChild(document.createTextNode(" "));
      row.appendChild(state);
      words.className = "rep-content";
      words.textContent = item.snippet;
      li.appendChild(row);
      li.appendChild(codeLine(item));
      li.appendChild(words);
      list.insertBefore(li, list.firstChild);
    });
  }

  // The receipt the page shows after a plain post or a 补发查询码: kept like a sent form's.
  function keepReceipt() {
    Array.prototype.forEach.call(document.querySelectorAll("[data-slip]"), function (box) {
      remember({ no: box.getAttribute("data-no"), code: box.getAttribute("data-code"),
                 qr: box.getAttribute("data-qr"), url: box.getAttribute("data-url") });
      if (!box.querySelector("[data-show-slip]")) {
        var show = document.createElement("button");
        show.type = "button";
        show.className = "button";
        show.textContent = "全屏显示，给群众拍照";
        show.setAttribute("data-show-slip", box.getAttribute("data-no"));
        box.appendChild(show);
      }
    });
  }

  function showSlip(no) {
    var item = loadCodes().items[no], view = document.getElementById("slip-view");
    if (!item || !view) return;
    view.querySelector('[data-field="no"]').textContent = item.no;
    view.querySelector('[data-field="code"]').textContent = item.code;
    view.querySelector('[data-field="url"]').textContent = item.url || (location.origin + "/track");
    var qr = view.querySelector('[data-field="qr"]');
    qr.hidden = !item.qr;
    if (item.qr) qr.src = item.qr;
    view.hidden = false;
    view.querySelector("[data-close]").focus();
  }

  document.addEventListener("click", function (event) {
    var target = event.target.closest ? event.target.closest("[data-show-slip], #slip-view [data-print], #slip-view [data-close]") : null;
    if (!target) return;
    var view = document.getElementById("slip-view");
    if (target.hasAttribute("data-show-slip")) {
      showSlip(target.getAttribute("data-show-slip"));
    } else if (target.hasAttribute("data-print")) {
      document.body.setAttribute("data-print", target.getAttribute("data-print"));  // app.css picks the page size
      window.print();
    } else if (view) {
      view.hidden = true;
    }
  });
  window.addEventListener("afterprint", function () { document.body.removeAttribute("data-print"); });

  function contentOf(record) {
    for (var i = 0; i < record.fields.length; i++) {
      if (record.fields[i][0] === "content") return String(record.fields[i][1]).slice(0, 30);
    }
    return "";
  }

  // One round at a time; a call during a round (the `online` event while a send is failing) asks for
  // another round right after it, so a returning network is never missed.
  var again = false;
  function sync() {
    if (!entryForm() || !window.indexedDB) return Promise.resolve(0);
    if (syncing) {
      again = true;
      return syncing;
    }
    syncing = sendAll().catch(function () { return showPending(); }).then(function (count) {
      syncing = null;
      if (again) {
        again = false;
        return sync();
      }
      return count;
    });
    return syncing;
  }

  function rememberSource(form) {
    var select = form.querySelector('select[name="source"]');
    if (!select) return;
    try {
      var saved = localStorage.getItem(SOURCE_KEY);
      if (saved && select.querySelector('option[value="' + CSS.escape(saved) + '"]') && !form.querySelector(".field-error")) {
        select.value = saved;
      }
      select.addEventListener("change", function () { localStorage.setItem(SOURCE_KEY, select.value); });
    } catch (e) { /* no storage: the cookie default still applies */ }
  }

  // Ready for the next resident: every field this resident filled is emptied, whatever the page holds (a
  // field added to the form needs nothing here), and 同意公开 and 短信通知 are asked again. The source (a
  // select) stays; hidden fields are the page's own, or capture.js's, which empties them below.
  function clearEntry(form) {
    Array.prototype.forEach.call(form.querySelectorAll("textarea, input"), function (input) {
      if (input.type === "hidden" || input.type === "file") return;
      if (input.type === "radio" || input.type === "checkbox") input.checked = false;
      else input.value = "";
    });
    if (window.minyiCapture) window.minyiCapture.reset(form);  // photos and position belong to this form
    var content = form.elements.content;
    if (content) content.focus();
  }

  function setUp() {
    keepReceipt();
    annotate();
    var form = entryForm();
    if (!form || form.getAttribute("data-offline") === "on" || !window.indexedDB) return;
    form.setAttribute("data-offline", "on");
    rememberSource(form);
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      if (window.minyiCapture && window.minyiCapture.busy(form)) return;  // photos still being shrunk
      var fields = [], photos = [];  // every field as the plain form would send it: a ticked 同意公开 is ["public", "true"]
      new FormData(form).forEach(function (value, name) {
        if (typeof value !== "string") {  // a photo (an empty file input sends a nameless, empty one)
          if (value.size || value.name) photos.push(value);
        } else if (name !== "csrf_token" && name !== "idempotency_key") {
          fields.push([name, value]);
        }
      });
      var record = { key: uuid(), user: currentUser(), fields: fields, photos: photos, created: Date.now() };
      var source = form.elements.source;
      if (source && source.value) { try { localStorage.setItem(SOURCE_KEY, source.value); } catch (e) { /* ignore */ } }
      request("readwrite", function (store) { store.put(record); }).then(function () {
        clearEntry(form);
        note("已保存在手机上：" + contentOf(record) + (photos.length ? "（" + photos.length + " 张照片）" : "") +
             (navigator.onLine ? "（发送中）" : "（联网后自动发送）"));
        return showPending();
      }).then(sync, function () {
        form.submit();  // IndexedDB refused (private mode, full disk): post the plain form instead
      });
    });
    showPending().then(sync);
  }

  window.minyiOffline = { sync: sync, sendAll: sendAll, pending: showPending };

  window.addEventListener("online", sync);
  setInterval(sync, RETRY_MS);
  document.addEventListener("DOMContentLoaded", setUp);
  document.addEventListener("htmx:load", setUp);  // a boosted navigation back to /rep
  if (document.readyState !== "loading") setUp();

  if ("serviceWorker" in navigator) {
    navigator.serviceWorker.register("/sw.js", { scope: "/rep" }).catch(function () {});
  }
})();
