"""The admin page's stylesheet and scripts, and the ``AP`` stand-in for app pages.

Kept as strings so the subpackage needs no package data. The page's Content-Security-Policy
allows only scripts from the emulator itself, so nothing here uses inline handlers.

How ``AP`` reaches the host: the app page loads ``{xdm_e}{cp}/atlassian-connect/all.js`` (the
path the product served it from before the CDN), which posts requests to the parent window;
the host page's bridge answers only its own iframe, from the app's origin, and fetches
context tokens from the emulator with a JSON POST (which a foreign page cannot make without a
CORS preflight the emulator never grants).
"""

from __future__ import annotations

__all__ = ["ALL_JS", "HOST_CSS", "HOST_JS"]

HOST_CSS = """
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.43 -apple-system, BlinkMacSystemFont, "Segoe UI", Roboto,
       "Helvetica Neue", sans-serif; color: #172B4D; background: #FFFFFF; }
header.nav { display: flex; align-items: center; gap: 16px; height: 56px; padding: 0 20px;
             background: #0052CC; color: #FFFFFF; }
header.nav .logo { font-weight: 600; font-size: 18px; }
header.nav .site { opacity: .8; font-size: 12px; }
main { max-width: 1100px; margin: 0 auto; padding: 24px 20px 60px; }
h1 { font-size: 24px; font-weight: 500; margin: 0 0 16px; }
h2 { font-size: 16px; font-weight: 600; margin: 28px 0 8px; }
.upload { display: flex; gap: 8px; margin-bottom: 16px; }
.upload input { flex: 1; padding: 6px 8px; border: 2px solid #DFE1E6; border-radius: 3px; }
button, a.button { padding: 6px 12px; border: 0; border-radius: 3px; background: #F4F5F7;
                   color: #42526E; font: inherit; cursor: pointer; text-decoration: none; }
button.primary { background: #0052CC; color: #FFFFFF; }
button.danger { background: #DE350B; color: #FFFFFF; }
button:disabled { opacity: .5; cursor: progress; }
.flash { display: none; white-space: pre-wrap; padding: 12px 16px; border-radius: 3px;
         margin-bottom: 16px; }
.flash.error { display: block; background: #FFEBE6; border-left: 4px solid #DE350B; }
.flash.info { display: block; background: #E3FCEF; border-left: 4px solid #00875A; }
.app { border: 1px solid #DFE1E6; border-radius: 3px; padding: 12px 16px; margin-bottom: 8px; }
.app .row { display: flex; align-items: center; gap: 12px; flex-wrap: wrap; }
.app .title { font-weight: 600; flex: 1; }
.lozenge { font-size: 11px; font-weight: 700; padding: 2px 4px; border-radius: 3px; }
.lozenge.on { background: #E3FCEF; color: #006644; }
.lozenge.off { background: #DFE1E6; color: #42526E; }
.meta { color: #6B778C; font-size: 12px; margin-top: 6px; }
.meta code { font-size: 12px; }
table { border-collapse: collapse; width: 100%; font-size: 13px; }
th, td { text-align: left; padding: 4px 8px; border-bottom: 1px solid #EBECF0;
         vertical-align: top; }
td pre { margin: 0; white-space: pre-wrap; word-break: break-all; }
.frame-wrap { border: 1px solid #DFE1E6; border-radius: 3px; }
.frame-wrap iframe { display: block; width: 100%; height: 480px; border: 0; }
.empty { color: #6B778C; }
.flags { position: fixed; bottom: 24px; left: 24px; display: flex; flex-direction: column;
         gap: 8px; }
.flags div { background: #FFFFFF; box-shadow: 0 4px 8px rgba(9,30,66,.25); padding: 12px 16px;
             border-radius: 3px; max-width: 400px; }
"""

HOST_JS = r"""
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("host-data").textContent);
  var flash = document.getElementById("flash");

  function show(kind, text) {
    flash.className = "flash " + kind;
    flash.textContent = text;
  }

  function call(method, url, body) {
    return fetch(url, {
      method: method,
      headers: {"Content-Type": "application/json", "Accept": "application/json"},
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "same-origin"
    }).then(function (response) {
      return response.text().then(function (text) {
        var payload = {};
        try { payload = text ? JSON.parse(text) : {}; } catch (e) { payload = {message: text}; }
        if (!response.ok) {
          throw new Error(payload.message || ("HTTP " + response.status));
        }
        return payload;
      });
    });
  }

  function act(button, promise, done) {
    button.disabled = true;
    promise.then(function (payload) {
      sessionStorage.setItem("connect-host-flash", done(payload));
      location.reload();
    }, function (err) {
      button.disabled = false;
      show("error", err.message);
    });
  }

  var remembered = sessionStorage.getItem("connect-host-flash");
  if (remembered) {
    sessionStorage.removeItem("connect-host-flash");
    show("info", remembered);
  }

  var upload = document.getElementById("upload");
  if (upload) {
    upload.addEventListener("submit", function (event) {
      event.preventDefault();
      var url = upload.elements.url.value.trim();
      act(upload.querySelector("button"), call("POST", "/_emulator/apps", {url: url}),
          function (p) { return "Installed " + p.app.name + " (" + p.app.key + ")."; });
    });
  }

  document.addEventListener("click", function (event) {
    var forge = event.target.closest("button[data-forge]");
    if (forge) {
      var operation = forge.getAttribute("data-forge");
      if (operation === "move" &&
          !confirm("Move this site to the Forge version? Its Connect version goes, " +
                   "without an uninstalled event.")) { return; }
      act(forge, call("POST", "/_emulator/forge/" + operation, {}),
          function () { return "Forge: " + operation + " done."; });
      return;
    }
    var button = event.target.closest("button[data-action]");
    if (!button) { return; }
    var action = button.getAttribute("data-action");
    if (action === "clear-faults") {
      act(button, call("DELETE", "/_emulator/faults"), function () { return "Faults cleared."; });
      return;
    }
    var key = button.getAttribute("data-app");
    if (action === "uninstall" && !confirm("Uninstall " + key + "?")) { return; }
    act(button, call("POST", "/_emulator/apps/" + encodeURIComponent(key) + "/" + action, {}),
        function () { return key + ": " + action + " done."; });
  });

  // The host side of AP: answer only our iframe, only from the app's origin.
  var frame = document.getElementById("ap-frame");
  if (!frame) { return; }
  var flags = document.getElementById("flags");

  function reply(id, result, error) {
    frame.contentWindow.postMessage(
      {type: "ap-response", id: id, result: result, error: error}, data.appOrigin);
  }

  var handlers = {
    "context.getToken": function () {
      return call("POST", "/_emulator/apps/" + encodeURIComponent(data.appKey) +
                  "/context-token", {}).then(function (p) { return p.token; });
    },
    "context.getContext": function () { return Promise.resolve(data.context); },
    "user.getCurrentUser": function () {
      return Promise.resolve({atlassianAccountId: data.accountId});
    },
    "resize": function (args) {
      var height = parseInt(args && args[1], 10);
      if (height > 0 && height < 20000) { frame.style.height = height + "px"; }
      return Promise.resolve(true);
    },
    "sizeToParent": function () {
      frame.style.height = Math.max(300, window.innerHeight - 120) + "px";
      return Promise.resolve(true);
    },
    "flag.create": function (args) {
      var options = (args && args[0]) || {};
      var div = document.createElement("div");
      var title = document.createElement("strong");
      title.textContent = String(options.title || "");
      var body = document.createElement("div");
      body.textContent = String(options.body || "");
      div.appendChild(title);
      div.appendChild(body);
      flags.appendChild(div);
      setTimeout(function () { div.remove(); }, 8000);
      return Promise.resolve(true);
    },
    "navigator.reload": function () { location.reload(); return Promise.resolve(true); }
  };

  window.addEventListener("message", function (event) {
    if (event.source !== frame.contentWindow || event.origin !== data.appOrigin) { return; }
    var message = event.data;
    if (!message || message.type !== "ap-request" || typeof message.method !== "string") {
      return;
    }
    var handler = handlers[message.method];
    if (!handler) {
      reply(message.id, null, "AP." + message.method + " is not emulated");
      return;
    }
    handler(message.args).then(function (result) { reply(message.id, result, null); },
                               function (err) { reply(message.id, null, String(err.message)); });
  });
})();
"""

ALL_JS = r"""
/* A small stand-in for the Atlassian Connect JavaScript API, served by connect_settings'
   host emulator. Only what the emulator can answer is here. */
(function () {
  "use strict";
  if (window.AP && window.AP.__emulated) { return; }
  var options = {};
  try { options = JSON.parse(window.name || "{}") || {}; } catch (e) { options = {}; }
  var query = new URLSearchParams(location.search);
  var host = query.get("xdm_e") || options.xdm_e || "";
  var pending = {};
  var seq = 0;

  function request(method, args) {
    return new Promise(function (resolve, reject) {
      if (!host || window.parent === window) {
        reject(new Error("AP: this page is not inside the host's iframe"));
        return;
      }
      seq += 1;
      pending[seq] = {resolve: resolve, reject: reject};
      window.parent.postMessage({type: "ap-request", id: seq, method: method, args: args}, host);
    });
  }

  window.addEventListener("message", function (event) {
    if (event.source !== window.parent || event.origin !== host) { return; }
    var message = event.data;
    if (!message || message.type !== "ap-response" || !pending[message.id]) { return; }
    var entry = pending[message.id];
    delete pending[message.id];
    if (message.error) { entry.reject(new Error(message.error)); }
    else { entry.resolve(message.result); }
  });

  function withCallback(promise, callback) {
    if (typeof callback === "function") {
      promise.then(function (value) { callback(value); },
                   function (err) { console.error(err); });
    }
    return promise;
  }

  function height() {
    return Math.ceil(document.documentElement.getBoundingClientRect().height);
  }

  var AP = {
    __emulated: true,
    context: {
      getToken: function (callback) { return withCallback(request("context.getToken"), callback); },
      getContext: function (callback) {
        return withCallback(request("context.getContext"), callback);
      }
    },
    user: {
      getCurrentUser: function (callback) {
        return withCallback(request("user.getCurrentUser"), callback);
      }
    },
    resize: function (width, h) { return request("resize", [width || "100%", h || height()]); },
    sizeToParent: function () { return request("sizeToParent", []); },
    flag: {
      create: function (opts) {
        request("flag.create", [opts || {}]);
        return {close: function () {}};
      }
    },
    navigator: { reload: function () { return request("navigator.reload", []); } },
    request: function () {
      return Promise.reject(new Error("AP.request is not emulated: call the REST API from " +
                                      "the app's back end with an app JWT"));
    }
  };
  window.AP = AP;

  function autoResize() { AP.resize("100%", height()).catch(function () {}); }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", autoResize);
  } else {
    autoResize();
  }
  if (window.ResizeObserver) { new ResizeObserver(autoResize).observe(document.documentElement); }
})();
"""
