// Minyi submit pages: photos shrunk on the phone, and "use my position".
//
// Photos: each one chosen is decoded, turned upright and drawn again as a JPEG of at most 300 KB (a
// 3 MB camera photo sent over a market's weak signal would take minutes); redrawing also leaves its
// EXIF (GPS, camera, time) behind, as the server does again. The shrunk photos replace the chosen ones
// in the file input itself, so the plain form post and offline.js's queue send the small ones. Without
// JavaScript the input posts the originals and the server checks them (8 MB each).
//
// Place: "使用我的位置" fills the hidden latitude/longitude from the browser's geolocation; a refusal or
// a failure says so and changes nothing else. offline.js calls window.minyiCapture to empty the photos
// after queueing a form and to put a refused form's photos back.
(function () {
  "use strict";
  var TARGET_BYTES = 300 * 1024;
  var MAX_SIDE = 1600;  // pixels: sharp enough to read a sign, small enough to send
  var RAW_MAX_BYTES = 25 * 1024 * 1024;  // a file larger than this is not a phone photo
  var ACCEPTED = /^image\/(jpeg|png|webp|heic|heif|gif|bmp)$/;  // decoded here; HEIC only where the browser can

  function sizeText(bytes) {
    return bytes >= 1048576 ? (bytes / 1048576).toFixed(1) + " MB" : Math.max(1, Math.round(bytes / 1024)) + " KB";
  }

  function decode(file) {
    if (window.createImageBitmap) {
      return createImageBitmap(file, { imageOrientation: "from-image" }).catch(function () { return decodeByImage(file); });
    }
    return decodeByImage(file);
  }

  function decodeByImage(file) {
    return new Promise(function (resolve, reject) {
      var url = URL.createObjectURL(file), img = new Image();
      img.onload = function () { URL.revokeObjectURL(url); resolve(img); };
      img.onerror = function () { URL.revokeObjectURL(url); reject(new Error("decode")); };
      img.src = url;
    });
  }

  function encode(picture, scale, quality) {
    var width = Math.max(1, Math.round(picture.width * scale)), height = Math.max(1, Math.round(picture.height * scale));
    var canvas = document.createElement("canvas");
    canvas.width = width;
    canvas.height = height;
    var context = canvas.getContext("2d");
    context.fillStyle = "#fff";  // a transparent PNG becomes a JPEG on white, not on black
    context.fillRect(0, 0, width, height);
    context.drawImage(picture, 0, 0, width, height);
    return new Promise(function (resolve) { canvas.toBlob(resolve, "image/jpeg", quality); }).then(function (blob) {
      if (!blob) throw new Error("encode");
      if (blob.size <= TARGET_BYTES || (width <= 200 && height <= 200)) return blob;
      if (quality > 0.5) return encode(picture, scale, quality - 0.12);
      return encode(picture, scale * 0.75, 0.7);
    });
  }

  // One chosen file → a File of at most TARGET_BYTES, or a message why it cannot be taken.
  function shrink(file, index) {
    if (file.type && !ACCEPTED.test(file.type)) {
      return Promise.reject(new Error("“" + file.name + "”不是照片，只能上传 JPG、PNG 或 WebP 格式的照片。"));
    }
    if (file.size > RAW_MAX_BYTES) {
      return Promise.reject(new Error("“" + file.name + "”太大（" + sizeText(file.size) + "），请选择 " +
        sizeText(RAW_MAX_BYTES) + " 以内的照片。"));
    }
    return decode(file).then(function (picture) {
      var scale = Math.min(1, MAX_SIDE / Math.max(picture.width, picture.height));
      return encode(picture, scale, 0.82).then(function (blob) {
        if (picture.close) picture.close();
        return new File([blob], "photo-" + Date.now() + "-" + index + ".jpg", { type: "image/jpeg" });
      });
    }, function () {
      throw new Error("“" + file.name + "”无法读取，只能上传 JPG、PNG 或 WebP 格式的照片。");
    });
  }

  function parts(form) {
    var box = form.querySelector("[data-photos]");
    if (!box) return null;
    return { box: box, input: box.querySelector('input[type="file"]'), list: box.querySelector("[data-previews]"),
             status: box.querySelector("[data-photo-status]"), max: parseInt(box.getAttribute("data-max"), 10) || 6 };
  }

  function canReplace() {
    try { return typeof DataTransfer === "function" && !!new DataTransfer().items; } catch (e) { return false; }
  }

  // The photos now in the input (shrunk), and their previews with a button to take one out.
  function setPhotos(form, files) {
    var p = parts(form);
    if (!p || !canReplace()) return;
    var transfer = new DataTransfer();
    files.forEach(function (f) { transfer.items.add(f); });
    p.input.files = transfer.files;
    p.box.kept = files.slice();
    Array.prototype.forEach.call(p.list.querySelectorAll("img"), function (img) { URL.revokeObjectURL(img.src); });
    p.list.innerHTML = "";
    files.forEach(function (file, i) {
      var li = document.createElement("li"), img = document.createElement("img"), remove = document.createElement("button");
      img.src = URL.createObjectURL(file);
      img.alt = "照片 " + (i + 1) + "（" + sizeText(file.size) + "）";
      img.width = 72;
      img.height = 72;
      remove.type = "button";
      remove.className = "link";
      remove.textContent = "删除";
      remove.setAttribute("aria-label", "删除照片 " + (i + 1));
      remove.addEventListener("click", function () {
        setPhotos(form, (p.box.kept || []).filter(function (_f, j) { return j !== i; }));
        say(p, "");
      });
      li.appendChild(img);
      li.appendChild(remove);
      p.list.appendChild(li);
    });
    p.list.hidden = files.length === 0;
  }

  function say(p, text, bad) {
    if (!p.status) return;
    p.status.textContent = text;
    p.status.className = bad ? "field-error" : "hint";
  }

  function busy(form, on) {
    form.toggleAttribute("data-busy", on);
    Array.prototype.forEach.call(form.querySelectorAll('button[type="submit"]'), function (b) { b.disabled = on; });
  }

  function chosen(form) {
    var p = parts(form);
    if (!p || !canReplace()) return;  // an old browser: the originals go as they are, the server checks them
    var kept = (p.box.kept || []).slice(), picked = Array.prototype.slice.call(p.input.files || []);
    if (!picked.length) { setPhotos(form, kept); return; }
    var room = p.max - kept.length, problems = [];
    if (picked.length > room) {
      problems.push("每份意见最多 " + p.max + " 张照片，多出的 " + (picked.length - Math.max(room, 0)) + " 张没有加上。");
      picked = picked.slice(0, Math.max(room, 0));
    }
    busy(form, true);
    say(p, "正在处理照片…");
    var chain = Promise.resolve();
    picked.forEach(function (file, i) {
      chain = chain.then(function () {
        return shrink(file, kept.length + i).then(function (small) { kept.push(small); },
                                                   function (error) { problems.push(error.message); });
      });
    });
    chain.then(function () {
      setPhotos(form, kept);
      busy(form, false);
      say(p, problems.length ? problems.join(" ") : (kept.length ? "已添加 " + kept.length + " 张照片。" : ""), problems.length > 0);
    });
  }

  // --- place ------------------------------------------------------------------------------------------

  var LOCATE_ERRORS = {
    1: "没有获得定位权限，位置未记录。可以从列表中选择地点，或在“地点”里写明。",
    2: "暂时无法获取位置（信号弱或定位已关闭）。可以从列表中选择地点，或在“地点”里写明。",
    3: "定位超时，位置未记录。可以再试一次，或从列表中选择地点。",
  };

  function locate(form) {
    var box = form.querySelector("[data-place]");
    if (!box) return;
    var status = box.querySelector("[data-locate-status]"), button = box.querySelector("[data-locate]");
    status.className = "hint";
    status.textContent = "正在获取位置…";
    button.disabled = true;
    navigator.geolocation.getCurrentPosition(function (position) {
      var c = position.coords;
      form.elements.latitude.value = c.latitude.toFixed(6);
      form.elements.longitude.value = c.longitude.toFixed(6);
      status.textContent = "已记录当前位置" + (c.accuracy ? "（误差约 " + Math.round(c.accuracy) + " 米）" : "") + "。";
      button.textContent = "重新定位";
      button.disabled = false;
    }, function (error) {
      status.className = "field-error";
      status.textContent = LOCATE_ERRORS[error.code] || LOCATE_ERRORS[2];
      button.disabled = false;
    }, { enableHighAccuracy: true, timeout: 15000, maximumAge: 60000 });
  }

  function reset(form) {
    setPhotos(form, []);
    var p = parts(form);
    if (p) say(p, "");
    var box = form.querySelector("[data-place]");
    if (!box) return;
    form.elements.latitude.value = "";
    form.elements.longitude.value = "";
    if (form.elements.place) form.elements.place.value = "";
    var status = box.querySelector("[data-locate-status]"), button = box.querySelector("[data-locate]");
    if (status) status.textContent = "";
    if (button) button.textContent = "使用我的位置";
  }

  function setUp() {
    Array.prototype.forEach.call(document.querySelectorAll("form"), function (form) {
      if (form.hasAttribute("data-capture") || !(form.querySelector("[data-photos]") || form.querySelector("[data-place]"))) return;
      form.setAttribute("data-capture", "on");
      var p = parts(form);
      if (p && p.input) {
        p.input.addEventListener("change", function () { chosen(form); });
        // A button in Chinese instead of the browser's own "Choose Files" (the input stays, out of sight).
        var pick = p.box.querySelector("[data-photo-pick]");
        if (pick && canReplace()) {
          pick.hidden = false;
          p.box.classList.add("js-photos");
        }
      }
      var button = form.querySelector("[data-locate]");
      if (button && navigator.geolocation) {
        button.hidden = false;
        button.addEventListener("click", function () { locate(form); });
      }
    });
  }

  window.minyiCapture = {
    photos: function (form) { var p = parts(form); return p && p.box.kept ? p.box.kept.slice() : null; },
    restore: setPhotos,
    reset: reset,
    busy: function (form) { return form.hasAttribute("data-busy"); },
  };

  document.addEventListener("DOMContentLoaded", setUp);
  document.addEventListener("htmx:load", setUp);
  if (document.readyState !== "loading") setUp();
})();
