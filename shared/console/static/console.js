// The console's one script, ours (served inline; the Content-Security-Policy allows it by its hash).
// 1. Key-only deployments: with the function key in the address (?code=…), links and GET forms keep it, so
//    the next page passes the host's key check too. The server never writes the key into a page.
// 2. Actions (Retry, Skip, Pause, …) are POSTed with fetch and the header x-dualsync-console, which no form on
//    another site can send (the CSRF guard); a function key goes in the x-functions-key header, never in the
//    URL of a write. The answer's message is shown once the page has reloaded with the new state.
(function () {
  "use strict";
  var NOTICE = "dualsync-console-notice";
  var key = new URLSearchParams(location.search).get("code");

  function keep(url) {
    var u = new URL(url, location.href);
    if (key && u.origin === location.origin && !u.searchParams.has("code")) u.searchParams.set("code", key);
    return u.toString();
  }

  function show(level, text) {
    var box = document.getElementById("notice");
    box.textContent = text;
    box.className = "notice " + level;
    box.hidden = false;
  }

  if (key) document.querySelectorAll("a[href]").forEach(function (a) { a.href = keep(a.href); });

  document.addEventListener("submit", function (ev) {
    var form = ev.target;
    if (form.method.toLowerCase() !== "post") {
      if (key && !form.querySelector("input[name=code]")) {
        var hidden = document.createElement("input");
        hidden.type = "hidden"; hidden.name = "code"; hidden.value = key;
        form.appendChild(hidden);
      }
      return;
    }
    ev.preventDefault();
    var headers = {"x-dualsync-console": "1", "content-type": "application/x-www-form-urlencoded"};
    if (key) headers["x-functions-key"] = key;
    var buttons = form.querySelectorAll("button");
    buttons.forEach(function (b) { b.disabled = true; });
    show("busy", (ev.submitter && ev.submitter.dataset.busy) || "Working…");
    fetch(form.action, {method: "POST", headers: headers, credentials: "same-origin",
                        body: new URLSearchParams(new FormData(form))})
      .then(function (r) {
        return r.json().catch(function () { return {}; }).then(function (doc) {
          if (r.ok) {
            sessionStorage.setItem(NOTICE, JSON.stringify({level: doc.ok ? "ok" : "warn", text: doc.message}));
            location.reload();
            return;
          }
          show("error", (doc.error && doc.error.message) || ("the console answered " + r.status));
          buttons.forEach(function (b) { b.disabled = false; });
        });
      })
      .catch(function (e) {
        show("error", String(e));
        buttons.forEach(function (b) { b.disabled = false; });
      });
  });

  var saved = sessionStorage.getItem(NOTICE);
  if (saved) {
    sessionStorage.removeItem(NOTICE);
    var n = JSON.parse(saved);
    show(n.level, n.text);
  }
})();
