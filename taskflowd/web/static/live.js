/* Live updates over the /api/v1/events WebSocket: execution changes move the lists,
   statistics refresh the overview. Reconnects with backoff after a restart; a session
   that ended leads back to the sign-in page. */
(function () {
  "use strict";

  var Taskflow = (window.Taskflow = window.Taskflow || {});
  var MAX_ROWS = 100;
  var MIN_DELAY_MS = 1000;
  var MAX_DELAY_MS = 30000;
  var FINAL = { COMPLETED: true, FAILED: true, CANCELLED: true };

  function setStatus(state, text) {
    var node = document.getElementById("live-status");
    if (!node) return;
    node.setAttribute("data-state", state);
    var label = node.querySelector(".live-text");
    if (label) label.textContent = text;
    node.title = text;
  }

  /* --- executions tables -------------------------------------------------------------- */
  function cell(label, name, content) {
    var td = document.createElement("td");
    td.setAttribute("data-label", label);
    if (name) td.setAttribute("data-cell", name);
    if (content) td.appendChild(content);
    return td;
  }

  function link(href, content) {
    var a = document.createElement("a");
    a.href = href;
    if (typeof content === "string") a.textContent = content;
    else a.appendChild(content);
    return a;
  }

  function newRow(table, item) {
    var tr = document.createElement("tr");
    tr.setAttribute("data-execution-id", item.id);
    tr.className = "row-new";
    var code = Taskflow.el("code", "", String(item.id).slice(0, 8));
    tr.appendChild(cell("Execution", "", link("/dashboard/executions/" + encodeURIComponent(item.id), code)));
    if (table.hasAttribute("data-show-task")) {
      var name = item.taskName ? link("/dashboard/tasks/" + encodeURIComponent(item.taskId), item.taskName)
        : Taskflow.el("span", "muted", "Deleted task");
      tr.appendChild(cell("Task", "", name));
    }
    tr.appendChild(cell("Status", "status", Taskflow.badge(item.status)));
    tr.appendChild(cell("Attempts", "attempts", document.createTextNode(String(item.attempt || 1))));
    tr.appendChild(cell("Due", "", Taskflow.el("span", "muted", "—")));
    tr.appendChild(cell("Started", "started", Taskflow.timeElement(new Date())));
    tr.appendChild(cell("Duration", "duration", document.createTextNode(Taskflow.duration(item.durationMs))));
    return tr;
  }

  function updateRow(tr, item) {
    var status = tr.querySelector('[data-cell="status"]');
    if (status) {
      while (status.firstChild) status.removeChild(status.firstChild);
      var b = Taskflow.badge(item.status);
      b.classList.add("flash-in");
      status.appendChild(b);
    }
    var attempts = tr.querySelector('[data-cell="attempts"]');
    if (attempts && item.attempt) attempts.textContent = String(item.attempt);
    var durationCell = tr.querySelector('[data-cell="duration"]');
    if (durationCell && item.durationMs !== null && item.durationMs !== undefined) {
      durationCell.textContent = Taskflow.duration(item.durationMs);
    }
    var started = tr.querySelector('[data-cell="started"]');
    if (started && item.status === "PROCESSING") {
      while (started.firstChild) started.removeChild(started.firstChild);
      started.appendChild(Taskflow.timeElement(new Date()));
    }
  }

  function applyToTable(table, item) {
    var body = table.tBodies[0];
    var rows = body.querySelectorAll("tr[data-execution-id]");
    var existing = Array.prototype.find.call(rows, function (r) {
      return r.getAttribute("data-execution-id") === item.id;
    });
    if (existing) {
      updateRow(existing, item);
      return;
    }
    var taskFilter = table.getAttribute("data-task-filter");
    var statusFilter = table.getAttribute("data-status-filter");
    if (table.hasAttribute("data-frozen")) return;
    if (taskFilter && taskFilter !== item.taskId) return;
    if (statusFilter && statusFilter !== item.status) return;
    body.insertBefore(newRow(table, item), body.firstChild);
    while (body.rows.length > MAX_ROWS) body.removeChild(body.lastChild);
    var section = table.parentNode;
    var empty = section && section.querySelector("[data-empty]");
    if (empty) empty.hidden = true;
  }

  function applyToTasks(item) {
    var row = document.querySelector('#tasks-table tr[data-task-id="' + CSS.escape(item.taskId) + '"]');
    if (!row) return;
    var outcome = row.querySelector('[data-cell="outcome"]');
    if (!outcome) return;
    while (outcome.firstChild) outcome.removeChild(outcome.firstChild);
    var b = Taskflow.badge(item.status);
    b.classList.add("flash-in");
    outcome.appendChild(link("/dashboard/executions/" + encodeURIComponent(item.id), b));
    outcome.appendChild(document.createTextNode(" "));
    outcome.appendChild(Taskflow.timeElement(new Date()));
  }

  /* The execution page and the workflow page re-read themselves when its execution changes and swaps in the
     parts marked data-live-part (details, timeline, result, payload); the server's HTML
     is parsed into an inert document, so nothing in it runs. If the page cannot be read,
     a notice asks for a reload instead. The read says it is one (X-Taskflow-Live), so it
     leaves a flash message waiting for the page the browser loads next. */
  var detailRefresh = { running: false, again: false };

  function refreshDetail() {
    if (detailRefresh.running) {
      detailRefresh.again = true;
      return;
    }
    detailRefresh.running = true;
    var notice = document.getElementById("stale-notice");
    fetch(location.pathname + location.search, {
      credentials: "same-origin",
      headers: { Accept: "text/html", "X-Taskflow-Live": "1" }
    })
      .then(function (response) {
        if (!response.ok) throw new Error("HTTP " + response.status);
        return response.text();
      })
      .then(function (html) {
        var fresh = new DOMParser().parseFromString(html, "text/html");
        var parts = document.querySelectorAll("[data-live-part]");
        Array.prototype.forEach.call(parts, function (old) {
          var found = fresh.getElementById(old.id);
          if (!found) return;
          var copy = document.importNode(found, true);
          old.parentNode.replaceChild(copy, old);
          Taskflow.formatTimes(copy);
        });
        if (notice) notice.hidden = true;
      })
      .catch(function () {
        if (notice) notice.hidden = false;
      })
      .then(function () {
        detailRefresh.running = false;
        if (detailRefresh.again) {
          detailRefresh.again = false;
          refreshDetail();
        }
      });
  }

  function applyToDetail(item) {
    var head = document.getElementById("execution-head");
    if (!head || head.getAttribute("data-execution-id") !== item.id) return;
    var status = head.querySelector('[data-cell="status"]');
    if (status && status.textContent.trim() !== Taskflow.label(item.status)) {
      while (status.firstChild) status.removeChild(status.firstChild);
      status.appendChild(Taskflow.badge(item.status));
      refreshDetail();
    }
  }

  /* A workflow's steps are executions of its hidden task: any change to one of them
     redraws the graph, the selected run's steps and the run history. */
  function applyToWorkflow(item) {
    var graph = document.getElementById("workflow-graph");
    if (graph && graph.getAttribute("data-workflow-task") === item.taskId) refreshDetail();
  }

  function applyToFailures(item) {
    if (item.status !== "FAILED") return;
    var list = document.getElementById("recent-failures");
    if (!list) {
      var empty = document.getElementById("recent-failures-empty");
      if (!empty) return;
      list = document.createElement("ul");
      list.className = "rows";
      list.id = "recent-failures";
      empty.parentNode.replaceChild(list, empty);
    }
    var li = document.createElement("li");
    li.appendChild(link("/dashboard/executions/" + encodeURIComponent(item.id), item.taskName || "Deleted task"));
    var when = Taskflow.el("span", "small");
    when.appendChild(Taskflow.timeElement(new Date()));
    li.appendChild(when);
    li.appendChild(Taskflow.el("span", "muted small", "Failed after attempt " + (item.attempt || 1)));
    list.insertBefore(li, list.firstChild);
    while (list.children.length > 8) list.removeChild(list.lastChild);
  }

  var failureBurst = { count: 0, timer: null, name: "" };
  function noteFailure(item) {
    if (item.status !== "FAILED" && item.status !== "RETRYING") return;
    failureBurst.count += 1;
    failureBurst.name = item.taskName || "a task";
    failureBurst.retrying = item.status === "RETRYING";
    if (failureBurst.timer) return;
    failureBurst.timer = window.setTimeout(function () {
      var text = failureBurst.count === 1
        ? "“" + failureBurst.name + "” " + (failureBurst.retrying ? "failed; it will be retried." : "failed.")
        : failureBurst.count + " executions failed.";
      Taskflow.toast(text, "error");
      failureBurst.count = 0;
      failureBurst.timer = null;
    }, 800);
  }

  function onExecutions(message) {
    var tables = document.querySelectorAll("table[data-live-executions]");
    (message.items || []).forEach(function (item) {
      Array.prototype.forEach.call(tables, function (t) { applyToTable(t, item); });
      applyToTasks(item);
      applyToDetail(item);
      applyToWorkflow(item);
      applyToFailures(item);
      if (FINAL[item.status] || item.status === "RETRYING") noteFailure(item);
    });
  }

  /* --- overview numbers ---------------------------------------------------------------- */
  function setStat(name, value) {
    var node = document.querySelector('[data-stat="' + name + '"]');
    if (node) node.textContent = value;
  }

  function onStats(message) {
    var stats = message.stats;
    var series = message.series;
    if (!stats) return;
    var t1 = stats.throughput["1m"];
    var t1h = stats.throughput["1h"];
    setStat("finished1m", String(t1.finished));
    setStat("successRate1h", t1h.successRate === null ? "—" : (t1h.successRate * 100).toFixed(1) + " %");
    setStat("p50", Taskflow.duration(stats.runTime.p50Ms));
    setStat("p95", Taskflow.duration(stats.runTime.p95Ms));
    setStat("waiting", String((stats.depths.PENDING || 0) + (stats.depths.RETRYING || 0)));
    setStat("running", String(stats.depths.PROCESSING || 0));
    setStat("nodeCount", stats.nodes.length + " node" + (stats.nodes.length === 1 ? "" : "s"));
    if (series) {
      var sum = function (a) { return a.reduce(function (x, y) { return x + y; }, 0); };
      setStat("hourCompleted", String(sum(series.completed)));
      setStat("hourFailed", String(sum(series.failed)));
    }
    var generated = document.querySelector('[data-stat="generatedAt"]');
    if (generated) {
      generated.setAttribute("datetime", stats.generatedAt);
      Taskflow.formatTimes(generated.parentNode);
    }
    Object.keys(stats.depths).forEach(function (state) {
      var node = document.querySelector('[data-depth="' + state + '"]');
      if (node) node.textContent = String(stats.depths[state]);
    });
    if (Taskflow.charts && document.getElementById("throughput-chart")) {
      Taskflow.charts.update(series, {
        "depth-chart": stats.depths,
        "outcome-chart": { COMPLETED: t1h.completed, FAILED: t1h.failed, CANCELLED: t1h.cancelled }
      });
    }
  }

  /* --- connection ---------------------------------------------------------------------- */
  function connect() {
    var delay = MIN_DELAY_MS;
    var everConnected = false;
    var url = (location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/api/v1/events";
    /* Server time of the last news this page has: its rendering, then each message. */
    var since = document.body.getAttribute("data-rendered-at") || "";

    function open() {
      setStatus("connecting", everConnected ? "Reconnecting…" : "Connecting…");
      var socket = new WebSocket(url + (since ? "?since=" + encodeURIComponent(since) : ""));
      socket.addEventListener("message", function (event) {
        var message;
        try {
          message = JSON.parse(event.data);
        } catch (err) {
          return;
        }
        if (message.at && message.type !== "hello") since = String(message.at);
        if (message.type === "hello") {
          if (everConnected) Taskflow.toast("Live updates are back.", "ok");
          everConnected = true;
          delay = MIN_DELAY_MS;
          setStatus("live", "Live");
        } else if (message.type === "executions") {
          onExecutions(message);
        } else if (message.type === "stats") {
          onStats(message);
        } else if (message.type === "gap") {
          var gap = document.getElementById("live-gap");
          if (gap) {
            gap.hidden = false;
            document.getElementById("live-gap-reload").href = location.pathname + location.search;
          }
        }
      });
      socket.addEventListener("close", function (event) {
        if (event.code === 4401) {
          setStatus("offline", "Signed out");
          var next = encodeURIComponent(location.pathname + location.search);
          location.assign("/dashboard/login?next=" + next);
          return;
        }
        var wait = Math.round(delay * (0.5 + Math.random() / 2));
        setStatus("offline", "Offline — retrying in " + Math.ceil(wait / 1000) + " s");
        delay = Math.min(delay * 2, MAX_DELAY_MS);
        window.setTimeout(open, wait);
      });
    }

    open();
  }

  document.addEventListener("DOMContentLoaded", function () {
    if (document.body.getAttribute("data-live") !== "on" || !("WebSocket" in window)) return;
    connect();
  });
})();
