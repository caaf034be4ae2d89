/* Small SVG charts for the overview: a line chart (successes and failures per minute)
   and a horizontal bar chart (queue depth by state). Colours come from CSS classes, so
   both themes apply; tooltips follow the pointer and the arrow keys. */
(function () {
  "use strict";

  var SVG = "http://www.w3.org/2000/svg";
  var Taskflow = (window.Taskflow = window.Taskflow || {});
  var STATE_LABELS = {
    PENDING: "Pending", RETRYING: "Retrying", PROCESSING: "Running",
    COMPLETED: "Completed", FAILED: "Failed", CANCELLED: "Cancelled"
  };

  function svg(tag, attrs, parent) {
    var node = document.createElementNS(SVG, tag);
    Object.keys(attrs || {}).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    if (parent) parent.appendChild(node);
    return node;
  }

  function text(parent, x, y, value, anchor, extra) {
    var node = svg("text", Object.assign({ x: x, y: y, "text-anchor": anchor || "start" }, extra || {}), parent);
    node.textContent = value;
    return node;
  }

  /* A "nice" upper bound and step for an axis starting at 0. */
  function niceScale(max, ticks) {
    if (!(max > 0)) return { max: ticks, step: 1 };
    var raw = max / ticks;
    var magnitude = Math.pow(10, Math.floor(Math.log10(raw)));
    var steps = [1, 2, 2.5, 5, 10];
    var step = magnitude;
    for (var i = 0; i < steps.length; i++) {
      if (steps[i] * magnitude >= raw) { step = steps[i] * magnitude; break; }
    }
    step = Math.max(1, step);
    return { max: Math.ceil(max / step) * step, step: step };
  }

  function pad(n) { return n < 10 ? "0" + n : String(n); }
  function hhmm(date) { return pad(date.getHours()) + ":" + pad(date.getMinutes()); }

  function tooltip(container) {
    var tip = container.querySelector(".tooltip");
    if (!tip) {
      tip = document.createElement("div");
      tip.className = "tooltip";
      tip.hidden = true;
      tip.setAttribute("role", "status");
      container.appendChild(tip);
    }
    return tip;
  }

  function showTip(container, tip, lines, x, y) {
    while (tip.firstChild) tip.removeChild(tip.firstChild);
    lines.forEach(function (line, i) {
      var node = document.createElement(i === 0 ? "strong" : "div");
      node.textContent = line;
      tip.appendChild(node);
    });
    tip.hidden = false;
    var width = container.clientWidth;
    var left = Math.min(Math.max(0, x + 12), Math.max(0, width - tip.offsetWidth));
    if (x + 12 + tip.offsetWidth > width) left = Math.max(0, x - tip.offsetWidth - 12);
    tip.style.left = left + "px";
    tip.style.top = Math.max(0, y - tip.offsetHeight - 8) + "px";
  }

  /* --- line chart -------------------------------------------------------------------- */
  function lineChart(container, series) {
    var old = container.querySelector("svg");
    if (old) container.removeChild(old);
    var width = Math.max(260, container.clientWidth || 600);
    var height = 220;
    var m = { left: 38, right: 10, top: 12, bottom: 26 };
    var plotW = width - m.left - m.right;
    var plotH = height - m.top - m.bottom;
    var ok = series.completed || [];
    var bad = series.failed || [];
    var n = Math.max(ok.length, 1);
    var start = new Date(series.start).getTime();
    var step = (series.stepS || 60) * 1000;
    var peak = Math.max.apply(null, ok.concat(bad, [0]));
    var scale = niceScale(peak, 4);
    var root = svg("svg", { viewBox: "0 0 " + width + " " + height, width: width, height: height, "aria-hidden": "true" });
    function x(i) { return m.left + (n === 1 ? 0 : (i * plotW) / (n - 1)); }
    function y(v) { return m.top + plotH - (v / scale.max) * plotH; }

    var grid = svg("g", { class: "grid" }, root);
    var axis = svg("g", { class: "axis" }, root);
    for (var v = 0; v <= scale.max + 1e-9; v += scale.step) {
      svg("line", { x1: m.left, x2: width - m.right, y1: y(v), y2: y(v) }, grid);
      text(axis, m.left - 6, y(v) + 4, String(Math.round(v * 100) / 100), "end");
    }
    var every = plotW < 360 ? 20 : 10;
    for (var i = 0; i < n; i++) {
      var at = new Date(start + i * step);
      if (at.getMinutes() % every === 0) {
        svg("line", { x1: x(i), x2: x(i), y1: m.top + plotH, y2: m.top + plotH + 4 }, axis);
        text(axis, x(i), height - 6, hhmm(at), "middle");
      }
    }
    svg("line", { x1: m.left, x2: width - m.right, y1: m.top + plotH, y2: m.top + plotH }, axis);

    function path(values) {
      return values.map(function (val, i) { return (i ? "L" : "M") + x(i).toFixed(1) + " " + y(val).toFixed(1); }).join(" ");
    }
    if (ok.length) {
      svg("path", { class: "area-ok", d: path(ok) + " L" + x(ok.length - 1) + " " + y(0) + " L" + x(0) + " " + y(0) + " Z" }, root);
      svg("path", { class: "line line-ok", d: path(ok) }, root);
    }
    if (bad.length) svg("path", { class: "line line-bad", d: path(bad) }, root);

    var cursor = svg("line", { class: "cursor", x1: 0, x2: 0, y1: m.top, y2: m.top + plotH, visibility: "hidden" }, root);
    var dotOk = svg("circle", { class: "point-ok", r: 4, visibility: "hidden" }, root);
    var dotBad = svg("circle", { class: "point-bad", r: 4, visibility: "hidden" }, root);
    var hit = svg("rect", { class: "hit", x: m.left, y: m.top, width: plotW, height: plotH }, root);
    container.appendChild(root);
    var tip = tooltip(container);
    var state = container._chartState || (container._chartState = { index: n - 1 });

    function show(i) {
      i = Math.max(0, Math.min(n - 1, i));
      state.index = i;
      var at = new Date(start + i * step);
      [cursor, dotOk, dotBad].forEach(function (node) { node.setAttribute("visibility", "visible"); });
      cursor.setAttribute("x1", x(i));
      cursor.setAttribute("x2", x(i));
      dotOk.setAttribute("cx", x(i)); dotOk.setAttribute("cy", y(ok[i] || 0));
      dotBad.setAttribute("cx", x(i)); dotBad.setAttribute("cy", y(bad[i] || 0));
      var scaleX = container.clientWidth / width;
      showTip(container, tip, [hhmm(at) + "–" + hhmm(new Date(at.getTime() + step)),
        "Succeeded: " + (ok[i] || 0), "Failed: " + (bad[i] || 0)], x(i) * scaleX, y(Math.max(ok[i] || 0, bad[i] || 0)) * scaleX);
    }
    function hide() {
      [cursor, dotOk, dotBad].forEach(function (node) { node.setAttribute("visibility", "hidden"); });
      tip.hidden = true;
      state.active = false;
    }
    hit.addEventListener("pointermove", function (event) {
      var box = root.getBoundingClientRect();
      var px = ((event.clientX - box.left) / box.width) * width;
      state.active = true;
      show(Math.round(((px - m.left) / plotW) * (n - 1)));
    });
    hit.addEventListener("pointerleave", hide);
    if (!container._chartKeys) {
      container._chartKeys = true;
      container.tabIndex = 0;
      container.addEventListener("keydown", function (event) {
        var st = container._chartState;
        if (event.key === "ArrowLeft" || event.key === "ArrowRight") {
          event.preventDefault();
          st.active = true;
          container._chartShow(st.index + (event.key === "ArrowLeft" ? -1 : 1));
        } else if (event.key === "Escape") {
          container._chartHide();
        }
      });
      container.addEventListener("focus", function () { container._chartState.active = true; container._chartShow(container._chartState.index); });
      container.addEventListener("blur", function () { container._chartHide(); });
    }
    container._chartShow = show;
    container._chartHide = hide;
    if (state.active) show(state.index);
  }

  /* --- horizontal bar chart ----------------------------------------------------------- */
  function barChart(container, states, data) {
    var old = container.querySelector("svg");
    if (old) container.removeChild(old);
    var width = Math.max(260, container.clientWidth || 500);
    var row = 28;
    var m = { left: 84, right: 48, top: 4, bottom: 22 };
    var height = m.top + m.bottom + row * states.length;
    var plotW = width - m.left - m.right;
    var values = states.map(function (s) { return Number(data[s] || 0); });
    var scale = niceScale(Math.max.apply(null, values.concat([0])), 4);
    var root = svg("svg", { viewBox: "0 0 " + width + " " + height, width: width, height: height, "aria-hidden": "true" });
    var grid = svg("g", { class: "grid" }, root);
    var axis = svg("g", { class: "axis" }, root);
    function x(v) { return m.left + (v / scale.max) * plotW; }
    for (var v = 0; v <= scale.max + 1e-9; v += scale.step) {
      svg("line", { x1: x(v), x2: x(v), y1: m.top, y2: height - m.bottom }, grid);
      text(axis, x(v), height - 6, String(v), "middle");
    }
    var tip = tooltip(container);
    states.forEach(function (state, i) {
      var top = m.top + i * row;
      text(axis, m.left - 8, top + row / 2 + 4, STATE_LABELS[state] || state, "end");
      var w = Math.max(values[i] > 0 ? 2 : 0, x(values[i]) - m.left);
      svg("rect", { class: "bar bar-" + state, x: m.left, y: top + 5, width: w, height: row - 10 }, root);
      text(root, m.left + w + 6, top + row / 2 + 4, String(values[i]), "start", { class: "bar-value" });
      var band = svg("rect", { class: "hit", x: 0, y: top, width: width, height: row }, root);
      band.addEventListener("pointerenter", function () {
        var scaleX = container.clientWidth / width;
        var noun = values[i] === 1 ? " execution" : " executions";
        showTip(container, tip, [STATE_LABELS[state] || state, values[i] + noun], (m.left + w) * scaleX, top * scaleX + 8);
      });
      band.addEventListener("pointerleave", function () { tip.hidden = true; });
    });
    container.appendChild(root);
  }

  var charts = { bars: {} };

  function draw() {
    var throughput = document.getElementById("throughput-chart");
    if (throughput && charts.series) lineChart(throughput, charts.series);
    Object.keys(charts.bars).forEach(function (id) {
      var node = document.getElementById(id);
      if (node) barChart(node, node.getAttribute("data-states").split(" "), charts.bars[id]);
    });
  }

  Taskflow.charts = {
    /* series: per-minute counts; bars: {chart element id: {STATE: value}} */
    update: function (series, bars) {
      if (series) charts.series = series;
      Object.keys(bars || {}).forEach(function (id) { charts.bars[id] = bars[id]; });
      draw();
    }
  };

  document.addEventListener("DOMContentLoaded", function () {
    var throughput = document.getElementById("throughput-chart");
    var bars = document.querySelectorAll(".chart[data-states]");
    if (!throughput && !bars.length) return;
    try {
      if (throughput) charts.series = JSON.parse(throughput.getAttribute("data-series"));
      Array.prototype.forEach.call(bars, function (node) {
        charts.bars[node.id] = JSON.parse(node.getAttribute("data-values"));
      });
    } catch (err) {
      return;
    }
    draw();
    var pending = null;
    window.addEventListener("resize", function () {
      if (pending) window.clearTimeout(pending);
      pending = window.setTimeout(draw, 120);
    });
    document.addEventListener("taskflow:theme", draw);
  });
})();
