/* The task form: shows only the "when" fields of the chosen type, previews the next
   runs of the cron expression as it is typed, and checks the payload's JSON (the run
   form's too). The server checks everything again; this only answers sooner. */
(function () {
  "use strict";

  var Taskflow = (window.Taskflow = window.Taskflow || {});
  var DEBOUNCE_MS = 250;

  function fieldError(name, message) {
    var input = document.getElementById("f-" + name);
    var error = document.getElementById("e-" + name);
    if (!input || !error) return;
    var wrapper = input.closest(".field");
    var label = wrapper ? wrapper.querySelector("label") : null;
    if (message) {
      error.textContent = (label ? label.textContent + " " : "") + message;
      error.hidden = false;
      input.setAttribute("aria-invalid", "true");
      if (wrapper) wrapper.classList.add("has-error");
    } else {
      error.textContent = "";
      error.hidden = true;
      input.removeAttribute("aria-invalid");
      if (wrapper) wrapper.classList.remove("has-error");
    }
  }

  function setupTypeSwitch(form) {
    var type = document.getElementById("f-type");
    if (!type) return;
    function apply() {
      form.querySelectorAll("[data-when]").forEach(function (node) {
        node.hidden = node.getAttribute("data-when") !== type.value;
      });
      document.dispatchEvent(new CustomEvent("taskflow:type", { detail: type.value }));
    }
    type.addEventListener("change", apply);
    apply();
  }

  function setupCronPreview() {
    var cron = document.getElementById("f-cronExpression");
    var zone = document.getElementById("f-timezone");
    var box = document.getElementById("cron-preview");
    var status = document.getElementById("cron-preview-status");
    var list = document.getElementById("cron-preview-list");
    var type = document.getElementById("f-type");
    if (!cron || !box || !status || !list) return;
    var timer = null;
    var sequence = 0;

    function show(result) {
      while (list.firstChild) list.removeChild(list.firstChild);
      box.hidden = false;
      if (!result.ok) {
        status.textContent = "Not valid yet: " + result.error;
        status.className = "preview-status bad small";
        if (result.field === "cronExpression") fieldError("cronExpression", result.error);
        else fieldError("timezone", result.error);
        return;
      }
      fieldError("cronExpression", "");
      fieldError("timezone", "");
      status.textContent = result.runs.length ? "In " + result.timezone + ":" : "This expression has no future run.";
      status.className = "preview-status muted small";
      result.runs.forEach(function (run) {
        var li = document.createElement("li");
        var time = document.createElement("time");
        time.setAttribute("datetime", run.utc);
        time.textContent = run.local;
        li.appendChild(time);
        list.appendChild(li);
      });
    }

    function refresh() {
      if (type && type.value !== "RECURRING") return;
      var expression = cron.value.trim();
      if (!expression) {
        box.hidden = false;
        while (list.firstChild) list.removeChild(list.firstChild);
        status.textContent = "Type a cron expression to see when it runs.";
        status.className = "preview-status muted small";
        return;
      }
      var mine = ++sequence;
      var query = "cron=" + encodeURIComponent(expression) + "&timezone=" + encodeURIComponent(zone ? zone.value.trim() : "UTC");
      fetch("/dashboard/tasks/preview?" + query, { headers: { Accept: "application/json" }, credentials: "same-origin" })
        .then(function (response) {
          if (!response.ok) throw new Error("HTTP " + response.status);
          return response.json();
        })
        .then(function (result) {
          if (mine === sequence) show(result);
        })
        .catch(function () {
          if (mine !== sequence) return;
          box.hidden = false;
          status.textContent = "The preview is unavailable right now; the expression is checked when you save.";
          status.className = "preview-status muted small";
        });
    }

    function later() {
      if (timer) window.clearTimeout(timer);
      timer = window.setTimeout(refresh, DEBOUNCE_MS);
    }
    cron.addEventListener("input", later);
    if (zone) zone.addEventListener("input", later);
    document.addEventListener("taskflow:type", function (event) {
      if (event.detail === "RECURRING") refresh();
    });
    if (!document.querySelector('[data-field="cronExpression"].has-error')) refresh();
    else box.hidden = true;
  }

  function setupPayloadCheck() {
    var payload = document.getElementById("f-payload");
    if (!payload) return;
    payload.addEventListener("blur", function (event) {
      // Leaving for a button (a submit, most likely): a message appearing now would move
      // the button away between press and release and lose the click; the server answers.
      var next = event.relatedTarget;
      if (next && next.closest && next.closest("button, .button")) return;
      var text = payload.value.trim();
      if (!text) {
        fieldError("payload", "");
        return;
      }
      try {
        JSON.parse(text);
        fieldError("payload", "");
      } catch (err) {
        fieldError("payload", "is not valid JSON: " + err.message);
      }
    });
  }

  Taskflow.fieldError = fieldError;

  document.addEventListener("DOMContentLoaded", function () {
    if (document.getElementById("run-form")) setupPayloadCheck();
    var form = document.getElementById("task-form");
    if (!form) return;
    setupTypeSwitch(form);
    setupCronPreview();
    setupPayloadCheck();
  });
})();
