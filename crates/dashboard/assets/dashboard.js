// Haven dashboard: confirmation of destructive forms, and live progress of running exports.
(function () {
  "use strict";

  document.addEventListener("submit", function (event) {
    var form = event.target;
    var question = form.getAttribute("data-confirm");
    if (question && !window.confirm(question)) {
      event.preventDefault();
    }
  });

  function watchExports() {
    var running = document.querySelectorAll("[data-running]");
    if (running.length === 0) {
      return;
    }
    window.setTimeout(function () {
      fetch("/exports/status", { credentials: "same-origin", cache: "no-store" })
        .then(function (response) { return response.json(); })
        .then(function (jobs) {
          var byId = {};
          jobs.forEach(function (job) { byId[job.id] = job; });
          var reload = false;
          running.forEach(function (section) {
            var job = byId[section.getAttribute("data-job")];
            if (!job || (job.status !== "Accepted" && job.status !== "InProgress")) {
              reload = true;
              return;
            }
            var bar = section.querySelector("progress");
            var text = section.querySelector(".progress-text");
            if (bar) { bar.value = Math.round(job.fraction * 1000); }
            if (text) { text.textContent = job.progress; }
          });
          if (reload) {
            window.location.reload();
          } else {
            watchExports();
          }
        })
        .catch(function () { watchExports(); });
    }, 1000);
  }

  document.addEventListener("DOMContentLoaded", watchExports);
})();
