// fstore dashboard: the page's only script. Regions marked `data-live` are re-fetched as
// fragments (`?fragment=<id>`) every `data-every` milliseconds while the tab is visible, so
// charts and job statuses update without a reload. Everything else is plain HTML.
(function () {
  "use strict";
  function refresh(el) {
    var url = new URL(window.location.href);
    url.searchParams.set("fragment", el.id);
    fetch(url.toString(), { credentials: "same-origin", headers: { Accept: "text/html" } })
      .then(function (r) {
        // The session ended: reloading the page leads to the login page.
        if (r.status === 401) { window.location.reload(); return null; }
        return r.ok ? r.text() : null;
      })
      .then(function (html) {
        if (typeof html === "string") {
          el.innerHTML = html;
          el.setAttribute("data-updated", String(Date.now()));
        }
      })
      .catch(function () { /* the next tick tries again */ });
  }
  document.querySelectorAll("[data-live]").forEach(function (el) {
    var every = parseInt(el.getAttribute("data-every") || "5000", 10);
    setInterval(function () { if (!document.hidden) { refresh(el); } }, every);
  });
})();
