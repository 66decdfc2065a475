// Vigil's only script: progressive enhancements. Every page works without it.
(function () {
  "use strict";
  // Copy buttons: <button data-copy="ID"> copies the text of element ID.
  document.addEventListener("click", function (ev) {
    var b = ev.target.closest("[data-copy]");
    if (!b) return;
    var el = document.getElementById(b.getAttribute("data-copy"));
    if (!el || !navigator.clipboard) return;
    navigator.clipboard.writeText(el.textContent.trim()).then(function () {
      var old = b.textContent;
      b.textContent = "Copied";
      setTimeout(function () { b.textContent = old; }, 1500);
    });
  });
  // Confirmation for destructive forms: <form data-confirm="Really?">.
  document.addEventListener("submit", function (ev) {
    var f = ev.target;
    var msg = f.getAttribute && f.getAttribute("data-confirm");
    if (msg && !window.confirm(msg)) ev.preventDefault();
  });
  // Filter forms submit when a select changes: <form data-autosubmit>.
  document.addEventListener("change", function (ev) {
    var f = ev.target.form;
    if (f && f.hasAttribute("data-autosubmit") && ev.target.tagName === "SELECT") f.submit();
  });
})();
