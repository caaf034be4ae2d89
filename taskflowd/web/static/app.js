/* taskflowd dashboard: shared helpers (toasts, times, confirmations, theme, selection).
   Every page works without this script; it only adds comfort. Data from the server is
   always inserted with textContent, never as HTML. */
(function () {
  "use strict";

  var THEME_KEY = "taskflowd.theme";
  var Taskflow = (window.Taskflow = window.Taskflow || {});

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function csrfToken() {
    var meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.getAttribute("content") : "";
  }

  /* --- toasts ------------------------------------------------------------------------ */
  function toast(text, kind) {
    var box = document.getElementById("toasts");
    if (!box) return;
    var item = el("div", "toast" + (kind ? " toast-" + kind : ""), text);
    item.setAttribute("role", kind === "error" ? "alert" : "status");
    box.appendChild(item);
    while (box.children.length > 4) box.removeChild(box.firstChild);
    window.setTimeout(function () {
      if (item.parentNode) item.parentNode.removeChild(item);
    }, kind === "error" ? 8000 : 5000);
  }

  /* --- times ------------------------------------------------------------------------- */
  function pad(n) {
    return n < 10 ? "0" + n : String(n);
  }

  function localTime(date) {
    return (
      date.getFullYear() + "-" + pad(date.getMonth() + 1) + "-" + pad(date.getDate()) + " " +
      pad(date.getHours()) + ":" + pad(date.getMinutes()) + ":" + pad(date.getSeconds())
    );
  }

  function relative(date) {
    var seconds = Math.round((date.getTime() - Date.now()) / 1000);
    var abs = Math.abs(seconds);
    var text;
    if (abs < 5) return "just now";
    if (abs < 60) text = abs + " s";
    else if (abs < 3600) text = Math.round(abs / 60) + " min";
    else if (abs < 86400) text = Math.round(abs / 3600) + " h";
    else text = Math.round(abs / 86400) + " d";
    return seconds < 0 ? text + " ago" : "in " + text;
  }

  function formatTimes(root) {
    var nodes = (root || document).querySelectorAll("time[data-time]");
    Array.prototype.forEach.call(nodes, function (node) {
      var date = new Date(node.getAttribute("datetime"));
      if (isNaN(date.getTime())) return;
      node.textContent = localTime(date);
      node.title = date.toISOString().replace(".000Z", "Z") + " · " + relative(date);
    });
  }

  function timeElement(date) {
    var node = el("time", "", localTime(date));
    node.setAttribute("datetime", date.toISOString());
    node.setAttribute("data-time", "");
    node.title = relative(date);
    return node;
  }

  function duration(ms) {
    if (ms === null || ms === undefined) return "—";
    if (ms < 1) return "< 1 ms";
    if (ms < 1000) return Math.round(ms) + " ms";
    var s = ms / 1000;
    if (s < 60) return (s < 10 ? s.toFixed(2) : s.toFixed(1)) + " s";
    var m = Math.floor(s / 60);
    if (m < 60) return m + " min " + Math.floor(s % 60) + " s";
    return Math.floor(m / 60) + " h " + (m % 60) + " min";
  }

  /* --- status badges ----------------------------------------------------------------- */
  var TONES = {
    ACTIVE: "info", PAUSED: "muted", COMPLETED: "ok", FAILED: "bad",
    PENDING: "muted", PROCESSING: "info", RETRYING: "warn", CANCELLED: "muted"
  };

  function label(value) {
    var text = String(value || "").replace(/_/g, " ").toLowerCase();
    return text.charAt(0).toUpperCase() + text.slice(1);
  }

  function badge(status) {
    var node = el("span", "badge badge-" + (TONES[status] || "muted"), label(status));
    node.setAttribute("data-status", status);
    return node;
  }

  /* --- theme ------------------------------------------------------------------------- */
  var media = window.matchMedia ? window.matchMedia("(prefers-color-scheme: dark)") : null;

  function currentTheme() {
    var chosen = document.documentElement.getAttribute("data-theme");
    if (chosen === "dark" || chosen === "light") return chosen;
    return media && media.matches ? "dark" : "light";
  }

  function syncThemeButton() {
    var button = document.getElementById("theme-toggle");
    if (!button) return;
    var next = currentTheme() === "dark" ? "light" : "dark";
    button.setAttribute("aria-label", "Switch to " + next + " theme");
    button.title = "Switch to " + next + " theme";
  }

  function setupTheme() {
    var button = document.getElementById("theme-toggle");
    if (!button) return;
    syncThemeButton();
    button.addEventListener("click", function () {
      var next = currentTheme() === "dark" ? "light" : "dark";
      document.documentElement.setAttribute("data-theme", next);
      try {
        window.localStorage.setItem(THEME_KEY, next);
      } catch (err) {
        toast("Your browser does not let this page remember the theme.", "error");
      }
      syncThemeButton();
      document.dispatchEvent(new CustomEvent("taskflow:theme"));
    });
    if (media && media.addEventListener) {
      media.addEventListener("change", function () {
        syncThemeButton();
        document.dispatchEvent(new CustomEvent("taskflow:theme"));
      });
    }
  }

  /* --- confirmations ------------------------------------------------------------------ */
  function setupConfirm() {
    var dialog = document.getElementById("confirm-dialog");
    var pending = null;
    document.addEventListener("submit", function (event) {
      var submitter = event.submitter;
      if (!submitter || !submitter.hasAttribute("data-confirm")) return;
      if (submitter.getAttribute("data-confirmed") === "yes") {
        submitter.removeAttribute("data-confirmed");
        return;
      }
      event.preventDefault();
      var question = submitter.getAttribute("data-confirm");
      if (!dialog || typeof dialog.showModal !== "function") {
        if (window.confirm(question)) {
          submitter.setAttribute("data-confirmed", "yes");
          event.target.requestSubmit(submitter);
        }
        return;
      }
      pending = { form: event.target, submitter: submitter };
      document.getElementById("confirm-text").textContent = question;
      document.getElementById("confirm-ok").textContent = submitter.textContent.trim() || "Confirm";
      dialog.returnValue = "";
      dialog.showModal();
      document.getElementById("confirm-ok").focus();
    }, true);
    if (!dialog) return;
    dialog.addEventListener("close", function () {
      var action = pending;
      pending = null;
      if (!action) return;
      if (dialog.returnValue === "ok") {
        action.submitter.setAttribute("data-confirmed", "yes");
        action.form.requestSubmit(action.submitter);
      } else {
        action.submitter.focus();
      }
    });
  }

  /* --- bulk selection ----------------------------------------------------------------- */
  function setupSelection() {
    var all = document.querySelector("[data-select-all]");
    if (!all) return;
    var boxes = document.querySelectorAll("input." + all.getAttribute("data-select-all"));
    var count = document.getElementById("selected-count");
    var buttons = document.querySelectorAll("[data-needs-selection]");
    function refresh() {
      var selected = Array.prototype.filter.call(boxes, function (b) { return b.checked; }).length;
      all.checked = selected > 0 && selected === boxes.length;
      all.indeterminate = selected > 0 && selected < boxes.length;
      if (count) count.textContent = selected + " selected";
      Array.prototype.forEach.call(buttons, function (b) { b.disabled = selected === 0; });
    }
    all.addEventListener("change", function () {
      Array.prototype.forEach.call(boxes, function (b) { b.checked = all.checked; });
      refresh();
    });
    Array.prototype.forEach.call(boxes, function (b) { b.addEventListener("change", refresh); });
    refresh();
  }

  /* --- copying a value shown once (a new API key) ------------------------------------- */
  function selectText(node) {
    var range = document.createRange();
    range.selectNodeContents(node);
    var selection = window.getSelection();
    selection.removeAllRanges();
    selection.addRange(range);
  }

  function setupCopy() {
    Array.prototype.forEach.call(document.querySelectorAll("button[data-copy]"), function (button) {
      var source = document.getElementById(button.getAttribute("data-copy"));
      if (!source) return;
      var label = button.textContent;
      button.hidden = false;
      function copied() {
        button.textContent = "Copied";
        toast("Copied to the clipboard.", "ok");
        window.setTimeout(function () { button.textContent = label; }, 2500);
      }
      function selectInstead() {
        selectText(source);
        var done = false;
        try {
          done = document.execCommand("copy");
        } catch (err) {
          done = false;
        }
        if (done) copied();
        else toast("Copying is not allowed here; the key is selected, so press Ctrl+C.", "error");
      }
      button.addEventListener("click", function () {
        if (navigator.clipboard && window.isSecureContext) {
          navigator.clipboard.writeText(source.textContent.trim()).then(copied, selectInstead);
        } else {
          selectInstead();
        }
      });
    });
  }

  function setupAutosubmit() {
    document.querySelectorAll("select[data-autosubmit]").forEach(function (select) {
      select.addEventListener("change", function () {
        select.form.requestSubmit();
      });
    });
  }

  function focusErrors() {
    var summary = document.getElementById("error-summary");
    if (summary) summary.focus();
  }

  Taskflow.el = el;
  Taskflow.csrfToken = csrfToken;
  Taskflow.toast = toast;
  Taskflow.formatTimes = formatTimes;
  Taskflow.timeElement = timeElement;
  Taskflow.localTime = localTime;
  Taskflow.duration = duration;
  Taskflow.badge = badge;
  Taskflow.label = label;
  Taskflow.currentTheme = currentTheme;

  document.addEventListener("DOMContentLoaded", function () {
    formatTimes(document);
    setupTheme();
    setupConfirm();
    setupSelection();
    setupCopy();
    setupAutosubmit();
    focusErrors();
  });
})();
