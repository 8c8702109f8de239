// Live parts of a dashboard page: every element with data-live is re-read from the server
// every few seconds (the same page, fetched again) while the server still marks it live.
// Without JavaScript the page refreshes itself instead (a <noscript> meta refresh).
(function () {
  "use strict";
  var EVERY_MS = 2000;
  function live() { return document.querySelectorAll("[data-live][id]"); }
  function refresh() {
    if (!live().length) { return; }
    fetch(window.location.href, {credentials: "same-origin", headers: {"X-Live-Refresh": "1"}})
      .then(function (response) { return response.ok ? response.text() : null; })
      .then(function (html) {
        if (html === null) { return; }
        var fresh = new DOMParser().parseFromString(html, "text/html");
        live().forEach(function (old) {
          var replacement = fresh.getElementById(old.id);
          if (replacement) { old.replaceWith(document.importNode(replacement, true)); }
          else { old.removeAttribute("data-live"); }
        });
        if (!live().length && fresh.querySelector("main")) {
          // The job ended: show the rest of the page as it is now (outcome, new pipeline).
          document.querySelector("main").replaceWith(document.importNode(fresh.querySelector("main"), true));
        }
      })
      .catch(function () { /* the service is restarting: try again next time */ })
      .finally(function () { if (live().length) { window.setTimeout(refresh, EVERY_MS); } });
  }
  document.addEventListener("DOMContentLoaded", function () {
    if (live().length) { window.setTimeout(refresh, EVERY_MS); }
  });
})();
