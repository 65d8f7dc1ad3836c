/* connect_settings: the configure page's save.
 *
 * Reads the current values and version from <script id="app-settings">, sends
 * {"values": ..., "version": n} as JSON with the app session token from <meta name="token">,
 * and swaps in the fresh token from X-acpt after every answer. Works without the host's
 * all.js; uses AP.navigator.reload() when it is there. Everything shown is set as text. */
(function () {
  "use strict";

  var form = document.getElementById("cs-configure");
  var dataElement = document.getElementById("app-settings");
  if (!form || !dataElement) { return; }

  var state = JSON.parse(dataElement.textContent);
  var tokenMeta = document.querySelector('meta[name="token"]');
  var button = document.getElementById("cs-save");
  var statusBox = document.getElementById("cs-status");
  var formErrors = document.getElementById("cs-form-errors");
  var conflictBox = document.getElementById("cs-conflict");
  var expiredBox = document.getElementById("cs-expired");
  var historyList = document.getElementById("cs-history-list");
  var saving = false;
  var latest = null;  // the "current" of the last 409 answer

  function each(list, fn) { Array.prototype.forEach.call(list, fn); }
  function fieldBoxes() { return form.querySelectorAll(".cs-field[data-field]"); }
  function fieldBox(name) {
    var found = null;
    each(fieldBoxes(), function (box) { if (box.getAttribute("data-field") === name) { found = box; } });
    return found;
  }
  function inputs(box) { return box.querySelectorAll("input, select, textarea"); }
  function mainInput(box) {
    var name = box.getAttribute("data-field");
    var found = null;
    each(inputs(box), function (el) { if (!found && el.name === name) { found = el; } });
    return found;
  }
  function labelOf(name) {
    var box = fieldBox(name);
    return (box && box.getAttribute("data-label")) || name;
  }

  function token() { return tokenMeta ? tokenMeta.getAttribute("content") : ""; }
  function takeToken(response) {
    var fresh = response.headers.get("X-acpt");
    if (fresh && tokenMeta) { tokenMeta.setAttribute("content", fresh); }
  }

  // --- reading and writing fields ----------------------------------------------------------

  function read(box) {
    var kind = box.getAttribute("data-kind");
    var name = box.getAttribute("data-field");
    var el = mainInput(box);
    var picked;
    switch (kind) {
      case "bool":
        return {value: !!(el && el.checked)};
      case "multi":
        picked = [];
        each(inputs(box), function (input) {
          if (input.name !== name) { return; }
          if (input.tagName === "SELECT") {
            each(input.options, function (o) { if (o.selected) { picked.push(o.value); } });
          } else if (input.checked) {
            picked.push(input.value);
          }
        });
        return {value: picked};
      case "radio":
        picked = null;
        each(inputs(box), function (input) {
          if (input.name === name && input.checked) { picked = input.value; }
        });
        return {value: picked};
      case "lines":
        return {value: el.value.split(/\r?\n/).map(function (s) { return s.trim(); })
                                 .filter(function (s) { return s !== ""; })};
      case "secret":
        var clear = box.querySelector("[data-secret-clear]");
        if (clear && clear.checked) { return {value: null}; }
        if (el.value !== "") { return {value: el.value}; }
        return null;  // left out: the stored secret is kept
      case "number":
        return {value: el.value.trim() === "" ? null : el.value.trim()};
      default:
        return {value: el ? el.value : null};
    }
  }

  function collect() {
    var values = {};
    each(fieldBoxes(), function (box) {
      var entry = read(box);
      if (entry) { values[box.getAttribute("data-field")] = entry.value; }
    });
    return values;
  }

  function showSecretState(box, isSet) {
    var stateText = box.querySelector("[data-secret-state]");
    var clearWrap = box.querySelector("[data-secret-clear-wrap]");
    var clear = box.querySelector("[data-secret-clear]");
    var el = mainInput(box);
    if (stateText) {
      stateText.textContent = isSet
        ? "A value is set. Leave the box empty to keep it, or type a new one to replace it."
        : "No value is stored.";
    }
    if (clearWrap) { clearWrap.hidden = !isSet; }
    if (clear) { clear.checked = false; }
    if (el) { el.value = ""; el.disabled = false; }
  }

  function write(box, value) {
    var kind = box.getAttribute("data-kind");
    var name = box.getAttribute("data-field");
    var el = mainInput(box);
    var wanted = Array.isArray(value) ? value.map(String) : [];
    switch (kind) {
      case "bool":
        el.checked = !!value;
        break;
      case "multi":
        each(inputs(box), function (input) {
          if (input.name !== name) { return; }
          if (input.tagName === "SELECT") {
            each(input.options, function (o) { o.selected = wanted.indexOf(o.value) !== -1; });
          } else {
            input.checked = wanted.indexOf(input.value) !== -1;
          }
        });
        break;
      case "radio":
        each(inputs(box), function (input) {
          if (input.name === name) { input.checked = value !== null && input.value === String(value); }
        });
        break;
      case "lines":
        el.value = (value || []).join("\n");
        break;
      case "secret":
        showSecretState(box, !!(value && value.set));
        break;
      default:
        el.value = value === null || value === undefined ? "" : String(value);
    }
  }

  function applyValues(values) {
    each(fieldBoxes(), function (box) {
      var name = box.getAttribute("data-field");
      if (Object.prototype.hasOwnProperty.call(values, name)) { write(box, values[name]); }
    });
  }

  // --- messages ----------------------------------------------------------------------------

  function display(value) {
    if (value && typeof value === "object" && value.secret === true) {
      return value.set ? "set" : "not set";
    }
    if (value === null || value === undefined || value === "") { return "(empty)"; }
    if (value === true) { return "Yes"; }
    if (value === false) { return "No"; }
    if (Array.isArray(value)) { return value.length ? value.map(display).join(", ") : "(none)"; }
    return String(value);
  }

  function same(a, b) { return JSON.stringify(a) === JSON.stringify(b); }

  function announce(text, failed) {
    if (!statusBox) { return; }
    statusBox.textContent = text;
    statusBox.classList.toggle("cs-status-error", !!failed);
  }

  function clearErrors() {
    formErrors.hidden = true;
    formErrors.textContent = "";
    each(form.querySelectorAll("[data-error-for]"), function (box) {
      box.hidden = true;
      box.textContent = "";
    });
    each(form.querySelectorAll("[aria-invalid]"), function (el) { el.removeAttribute("aria-invalid"); });
  }

  function addParagraphs(container, messages) {
    messages.forEach(function (message) {
      var p = document.createElement("p");
      p.textContent = message;
      container.appendChild(p);
    });
  }

  function showErrors(errors) {
    var firstInvalid = null;
    var general = [];
    Object.keys(errors).forEach(function (name) {
      var messages = errors[name];
      var box = name === "__all__" ? null : fieldBox(name);
      if (!box) {
        general = general.concat(messages.map(function (m) {
          return name === "__all__" ? m : labelOf(name) + ": " + m;
        }));
        return;
      }
      var errorBox = box.querySelector("[data-error-for]");
      addParagraphs(errorBox, messages);
      errorBox.hidden = false;
      each(inputs(box), function (el) {
        if (el.name === name) { el.setAttribute("aria-invalid", "true"); }
      });
      if (!firstInvalid) { firstInvalid = mainInput(box); }
    });
    if (general.length) {
      addParagraphs(formErrors, general);
      formErrors.hidden = false;
    }
    if (firstInvalid) { firstInvalid.focus(); } else if (general.length) { formErrors.focus(); }
  }

  function showGeneralError(message) {
    addParagraphs(formErrors, [message]);
    formErrors.hidden = false;
    formErrors.focus();
  }

  function showConflict(current) {
    latest = current;
    var list = conflictBox.querySelector("[data-conflict-list]");
    var summary = conflictBox.querySelector("[data-conflict-summary]");
    list.textContent = "";
    var changed = Object.keys(current.values).filter(function (name) {
      return !same(state.values[name], current.values[name]);
    });
    summary.textContent = changed.length
      ? "They changed (now version " + current.version + "):"
      : "Their save is version " + current.version + ".";
    changed.forEach(function (name) {
      var li = document.createElement("li");
      li.textContent = labelOf(name) + ": " + display(state.values[name]) + " \u2192 " +
                       display(current.values[name]);
      list.appendChild(li);
    });
    conflictBox.hidden = false;
    conflictBox.focus();
  }

  function showExpired() {
    expiredBox.hidden = false;
    expiredBox.focus();
  }

  function addHistory(before, after, version) {
    if (!historyList) { return; }
    var changed = Object.keys(after).filter(function (n) { return !same(before[n], after[n]); });
    var empty = historyList.querySelector("[data-history-empty]");
    if (empty) { empty.parentNode.removeChild(empty); }
    var li = document.createElement("li");
    li.className = "cs-history-entry";
    var meta = document.createElement("p");
    meta.className = "cs-history-meta";
    meta.textContent = "Just now \u00b7 you \u00b7 version " + version;
    li.appendChild(meta);
    var ul = document.createElement("ul");
    changed.forEach(function (name) {
      var item = document.createElement("li");
      var value = after[name];
      item.textContent = labelOf(name) + ": " + (value && value.secret === true
        ? "changed (secret)"
        : display(before[name]) + " \u2192 " + display(value));
      ul.appendChild(item);
    });
    li.appendChild(ul);
    historyList.insertBefore(li, historyList.firstChild);
  }

  // --- saving ------------------------------------------------------------------------------

  function setBusy(busy) {
    saving = busy;
    if (button) {
      button.disabled = busy;
      button.setAttribute("aria-disabled", busy ? "true" : "false");
    }
    form.setAttribute("aria-busy", busy ? "true" : "false");
  }

  function handle(status, data) {
    if (status === 200) {
      var before = state.values;
      state = {values: data.values, version: data.version};
      applyValues(data.values);
      if (data.changed && data.changed.length) {
        addHistory(before, data.values, data.version);
        announce("Saved.");
      } else {
        announce("Saved. Nothing had changed.");
      }
    } else if (status === 400 && data && data.errors) {
      showErrors(data.errors);
      announce("Not saved: please correct the highlighted fields.", true);
    } else if (status === 409 && data && data.current) {
      showConflict(data.current);
      announce("Not saved: someone else saved first.", true);
    } else if (status === 401) {
      showExpired();
      announce("Not saved: your session has expired.", true);
    } else {
      showGeneralError((data && data.message) || "Saving failed (HTTP " + status + ").");
      announce("Not saved.", true);
    }
  }

  function save() {
    clearErrors();
    conflictBox.hidden = true;
    expiredBox.hidden = true;
    setBusy(true);
    announce("Saving\u2026");
    var body = JSON.stringify({values: collect(), version: state.version});
    fetch(form.getAttribute("action"), {
      method: "POST",
      headers: {
        "Content-Type": "application/json",
        "Accept": "application/json",
        "Authorization": "JWT " + token()
      },
      body: body,
      credentials: "omit",
      cache: "no-store"
    }).then(function (response) {
      takeToken(response);
      return response.json().catch(function () { return null; }).then(function (data) {
        handle(response.status, data);
      });
    }, function () {
      showGeneralError("The server could not be reached. Check your connection and save again.");
      announce("Not saved.", true);
    }).then(function () { setBusy(false); }, function () { setBusy(false); });
  }

  // The second click of a double click is the same intent, even when the first save has
  // already answered and re-enabled the button (a fast server answers between the clicks).
  if (button) {
    button.addEventListener("click", function (event) {
      if (event.detail > 1) { event.preventDefault(); }
    });
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    if (saving) { return; }  // a double click or a second Enter while saving
    save();
  });

  each(form.querySelectorAll("[data-secret-clear]"), function (clear) {
    clear.addEventListener("change", function () {
      var box = clear.closest(".cs-field");
      var el = box && mainInput(box);
      if (el) {
        el.disabled = clear.checked;
        if (clear.checked) { el.value = ""; }
      }
    });
  });

  conflictBox.querySelector("[data-conflict-reload]").addEventListener("click", function () {
    if (!latest) { return; }
    state = {values: latest.values, version: latest.version};
    applyValues(latest.values);
    clearErrors();
    conflictBox.hidden = true;
    announce("Loaded version " + latest.version + ". Make your changes again and save.");
    var first = fieldBoxes()[0];
    var el = first && mainInput(first);
    if (el) { el.focus(); }
  });

  expiredBox.querySelector("[data-reload-page]").addEventListener("click", function () {
    if (window.AP && window.AP.navigator && typeof window.AP.navigator.reload === "function") {
      window.AP.navigator.reload();
    } else {
      window.location.reload();
    }
  });
}());
