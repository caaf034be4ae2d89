/* Applies the remembered theme before the page paints (loaded synchronously in <head>). */
(function () {
  "use strict";
  document.documentElement.classList.add("js");
  try {
    var stored = window.localStorage.getItem("taskflowd.theme");
    if (stored === "dark" || stored === "light") {
      document.documentElement.setAttribute("data-theme", stored);
    }
  } catch (err) {
    /* Storage can be blocked; the system preference then decides. */
  }
})();
