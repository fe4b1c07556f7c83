// The Train page's uploads. Files dropped anywhere on the page, or chosen in the drop zone, wait
// in rows of their own (an audio or video file asks whether it is a voice sample); Upload sends
// each file on its own request, so a refused file never takes the others down.
(function () {
  var AUDIO = ["wav", "mp3", "ogg", "oga", "opus", "flac", "m4a"];
  var VIDEO = ["mp4", "mkv", "webm", "mov"];
  // A voice sample is about 15 s; a recording much longer than a minute is a lecture or a talk.
  var VOICE_SAMPLE_MAX_SECONDS = 60;
  var rowCount = 0;

  function uploadForm() {
    return document.getElementById("upload-form");
  }

  function extension(name) {
    var dot = name.lastIndexOf(".");
    return dot < 0 ? "" : name.slice(dot + 1).toLowerCase();
  }

  function mediaKind(file) {
    var ext = extension(file.name);
    var type = file.type || "";
    if (AUDIO.indexOf(ext) >= 0 || type.indexOf("audio/") === 0) return "audio";
    if (VIDEO.indexOf(ext) >= 0 || type.indexOf("video/") === 0) return "video";
    return "";
  }

  // An idempotency key per file: a resend after a lost answer stores nothing twice.
  // (crypto.randomUUID needs a secure context; a LAN deployment may be plain http.)
  function newKey() {
    var bytes = new Uint8Array(16);
    crypto.getRandomValues(bytes);
    return Array.from(bytes, function (b) { return b.toString(16).padStart(2, "0"); }).join("");
  }

  function humanSize(size) {
    var units = ["B", "KB", "MB", "GB"];
    for (var i = 0; i < units.length; i++) {
      if (size < 1024) return (i ? size.toFixed(1) : size) + " " + units[i];
      size /= 1024;
    }
    return size.toFixed(1) + " TB";
  }

  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (key) {
      if (key === "text") node.textContent = attrs[key];
      else node.setAttribute(key, attrs[key]);
    });
    (children || []).forEach(function (child) { if (child) node.appendChild(child); });
    return node;
  }

  function choice(name, value, label, checked) {
    var input = el("input", { type: "radio", name: name, value: value });
    input.checked = checked;
    return el("label", {}, [input, el("span", { text: " " + label })]);
  }

  // Audio or video: training material (its words are read) or a voice sample (the voice is
  // cloned from it). A short audio file is most likely a voice sample.
  function kindChoice(row, file, form) {
    var name = "upload-kind-" + row.dataset.n;
    var hint = form.dataset.voiceHint || "";
    var fieldset = el("fieldset", { class: "upload-kind" }, [
      el("legend", { class: "muted", text: "Use " + file.name + " as" }),
      choice(name, "basic", "Training material", true),
      choice(name, "voice_synthesis", "Voice sample — " + hint, false),
    ]);
    if (mediaKind(file) === "audio") preselectShortAudio(file, fieldset, name);
    return fieldset;
  }

  function preselectShortAudio(file, fieldset, name) {
    var url = URL.createObjectURL(file);
    var audio = new Audio();
    audio.preload = "metadata";
    function done() { URL.revokeObjectURL(url); audio.removeAttribute("src"); }
    audio.addEventListener("loadedmetadata", function () {
      var seconds = audio.duration;
      var touched = fieldset.dataset.touched === "1";
      if (!touched && isFinite(seconds) && seconds <= VOICE_SAMPLE_MAX_SECONDS) {
        fieldset.querySelector('input[value="voice_synthesis"]').checked = true;
      }
      fieldset.dataset.seconds = String(Math.round(seconds));
      done();
    });
    audio.addEventListener("error", done);
    audio.src = url;
    fieldset.addEventListener("change", function () { fieldset.dataset.touched = "1"; });
  }

  function addFiles(files) {
    var form = uploadForm();
    if (!form) return;
    var queue = form.querySelector("#upload-queue");
    // Rows of a finished batch make way for the next one.
    queue.querySelectorAll('.upload-row[data-state="done"], .upload-row[data-state="rejected"]')
      .forEach(function (row) { row.remove(); });
    Array.from(files).forEach(function (file) {
      var row = el("li", { class: "upload-row", "data-state": "queued" });
      row.dataset.n = String(++rowCount);
      row.dataset.key = newKey();
      row.uploadFile = file;
      var remove = el("button", {
        type: "button", class: "secondary upload-remove", "aria-label": "Remove " + file.name,
        text: "Remove",
      });
      row.appendChild(el("div", { class: "row" }, [
        el("span", { class: "grow upload-name", text: file.name }),
        el("span", { class: "muted", text: humanSize(file.size) }),
        remove,
      ]));
      if (mediaKind(file)) row.appendChild(kindChoice(row, file, form));
      row.appendChild(el("progress", { max: "100", value: "0", "aria-label": "upload of " + file.name }));
      row.appendChild(el("p", { class: "upload-result", role: "status" }));
      queue.appendChild(row);
    });
    showActions(form);
  }

  function showActions(form) {
    var waiting = form.querySelectorAll('.upload-row[data-state="queued"]').length;
    var button = form.querySelector("#upload-button");
    button.textContent = waiting > 1 ? "Upload " + waiting + " files" : "Upload";
    form.querySelector("#upload-clear").hidden = !form.querySelector(".upload-row");
  }

  function csrfToken() {
    var meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.getAttribute("content") : "";
  }

  // One file, one request: resolves with null when stored, or the reason it was refused.
  function send(form, row) {
    return new Promise(function (resolve) {
      var file = row.uploadFile;
      var kind = row.querySelector(".upload-kind input:checked");
      var data = new FormData();
      data.append("file", file, file.name);
      data.append("type", kind ? kind.value : "basic");
      data.append("idempotency_key", row.dataset.key);
      var xhr = new XMLHttpRequest();
      var progress = row.querySelector("progress");
      xhr.upload.addEventListener("progress", function (event) {
        if (event.lengthComputable) progress.value = (event.loaded / event.total) * 100;
      });
      xhr.addEventListener("load", function () {
        if (xhr.status >= 200 && xhr.status < 300) return resolve(null);
        resolve(refusal(xhr));
      });
      xhr.addEventListener("error", function () {
        resolve("the connection was lost; try again");
      });
      xhr.open("POST", form.getAttribute("action"));
      xhr.setRequestHeader("X-CSRF-Token", csrfToken());
      xhr.setRequestHeader("X-Requested-With", "XMLHttpRequest");
      xhr.send(data);
    });
  }

  function refusal(xhr) {
    if (xhr.status === 413) return "the file is larger than the upload limit";
    try {
      var detail = JSON.parse(xhr.responseText).detail;
      if (detail) return String(detail);
    } catch (e) { /* not JSON: a proxy's or the CSRF check's page */ }
    if (xhr.status === 403) return "the page is out of date; reload it and try again";
    return "the server refused it (" + xhr.status + ")";
  }

  function settle(row, reason) {
    var result = row.querySelector(".upload-result");
    row.dataset.state = reason === null ? "done" : "rejected";
    var remove = row.querySelector(".upload-remove");
    if (remove) remove.remove();
    row.querySelectorAll(".upload-kind input").forEach(function (input) { input.disabled = true; });
    if (reason === null) {
      row.querySelector("progress").value = 100;
      result.textContent = "Uploaded";
      result.className = "upload-result ok";
    } else {
      // The row already names the file.
      var name = row.uploadFile.name + ": ";
      result.textContent = "Rejected: " + (reason.indexOf(name) === 0 ? reason.slice(name.length) : reason);
      result.className = "upload-result error";
    }
  }

  function named(name, reason) {
    return reason.indexOf(name) === 0 ? reason : name + ": " + reason;
  }

  async function uploadAll(form) {
    var rows = Array.from(form.querySelectorAll('.upload-row[data-state="queued"]'));
    if (!rows.length) {
      toast("Drop files here or choose them first.", "info");
      return;
    }
    var button = form.querySelector("#upload-button");
    button.disabled = true;
    var stored = 0;
    var refused = [];
    for (var i = 0; i < rows.length; i++) {
      rows[i].dataset.state = "uploading";
      var reason = await send(form, rows[i]);
      settle(rows[i], reason);
      if (reason === null) stored++;
      else refused.push(named(rows[i].uploadFile.name, reason));
    }
    button.disabled = false;
    showActions(form);
    if (stored) toast("Uploaded " + stored + (stored === 1 ? " file." : " files."), "success");
    refused.forEach(function (message) { toast("File upload failed! " + message, "error"); });
    var list = document.getElementById("materials");
    if (stored && list) {
      htmx.ajax("GET", form.dataset.materials, { target: "#materials", swap: "outerHTML" });
    }
  }

  // The same markup as the server's toasts (FastHTML's), so they look and dismiss alike.
  function toast(message, kind) {
    var container = document.getElementById("fh-toast-container");
    if (!container) return;
    var item = el("div", { class: "fh-toast fh-toast-" + kind, role: kind === "error" ? "alert" : "status" }, [
      el("span", { text: message }),
    ]);
    container.appendChild(item);
    setTimeout(function () { item.remove(); }, kind === "error" ? 10000 : 5000);
  }

  function hasFiles(event) {
    var types = event.dataTransfer && event.dataTransfer.types;
    return !!types && Array.from(types).indexOf("Files") >= 0;
  }

  function zone(on) {
    var dropzone = document.getElementById("dropzone");
    if (dropzone) dropzone.classList.toggle("dragging", on);
  }

  // While the Train page is open, the whole page takes dropped files.
  document.addEventListener("dragover", function (event) {
    if (!uploadForm() || !hasFiles(event)) return;
    event.preventDefault();
    event.dataTransfer.dropEffect = "copy";
    zone(true);
  });
  document.addEventListener("dragleave", function (event) {
    if (!event.relatedTarget) zone(false);
  });
  document.addEventListener("drop", function (event) {
    if (!uploadForm() || !hasFiles(event)) return;
    event.preventDefault();
    zone(false);
    addFiles(event.dataTransfer.files);
  });

  document.addEventListener("change", function (event) {
    var input = event.target;
    if (input.id !== "file" || !input.closest("#upload-form")) return;
    addFiles(input.files);
    input.value = ""; // the rows hold the files: choosing the same file again adds it again
  });

  document.addEventListener("click", function (event) {
    var target = event.target;
    if (!target.closest) return;
    var remove = target.closest(".upload-remove");
    if (remove && remove.closest("#upload-form")) {
      remove.closest(".upload-row").remove();
      showActions(uploadForm());
    }
    if (target.id === "upload-clear") {
      uploadForm().querySelectorAll('.upload-row:not([data-state="uploading"])')
        .forEach(function (row) { row.remove(); });
      showActions(uploadForm());
    }
  });

  document.addEventListener("submit", function (event) {
    if (event.target.id !== "upload-form") return;
    event.preventDefault();
    uploadAll(event.target);
  });

  // Scripts run: the form's own file field is replaced by the rows, and the drop zone says so.
  htmx.onLoad(function (root) {
    var form = root.id === "upload-form" ? root : root.querySelector && root.querySelector("#upload-form");
    if (form) form.classList.add("scripted");
  });
})();
