// The usage dashboard's charts (templates/dashboard_panel.html): reads the usage report (mlgate.predlog.usage.UsageReport
// as JSON) from <script type="application/json" id="usage-data"> and draws uPlot charts: requests per second,
// p50 and p99 latency (ms), 4xx / 5xx / 429 counts per bucket, and requests per second of the busiest models
// and callers. The tables are rendered on the server; this file only draws. No inline script, no CDN: uPlot is vendored under static/vendor/uplot/.
(function () {
  "use strict";

  function readReport() {
    var node = document.getElementById("usage-data");
    if (!node) return null;
    try {
      return JSON.parse(node.textContent);
    } catch (e) {
      return null;
    }
  }

  function seconds(iso) {
    return Date.parse(iso) / 1000;
  }

  function width(container) {
    return Math.max(280, Math.floor(container.clientWidth || 600));
  }

  function chart(id, title, series, data) {
    var container = document.getElementById(id);
    if (!container || typeof uPlot === "undefined") return null;
    var opts = {
      width: width(container),
      height: 220,
      scales: { x: { time: true } },
      axes: [{}, { size: 60 }],
      series: [{ label: "time (UTC)", value: "{YYYY}-{MM}-{DD} {HH}:{mm}:{ss}" }].concat(series),
      legend: { live: true },
      tzDate: function (ts) { return uPlot.tzDate(new Date(ts * 1000), "Etc/UTC"); },
    };
    container.textContent = "";
    var plot = new uPlot(opts, data, container);
    container.setAttribute("data-points", String(data[0].length));
    container.setAttribute("aria-label", title);
    return plot;
  }

  var PALETTE = ["#2457c5", "#177245", "#b3261e", "#8a5a00", "#6b3fa0", "#0f7c8c", "#c2410c", "#4b5563"];

  // One line per model (or caller): its requests per second.
  function byName(id, title, x, series) {
    if (!series.length) return null;
    return chart(id, title,
      series.map(function (s, i) { return { label: s.name, stroke: PALETTE[i % PALETTE.length], width: 2 }; }),
      [x].concat(series.map(function (s) { return s.requests_per_s; })));
  }

  function draw(report) {
    var buckets = report.buckets || [];
    var x = buckets.map(function (b) { return seconds(b.start); });
    function col(name) { return buckets.map(function (b) { return b[name]; }); }
    var plots = [];
    plots.push(chart("usage-rps", "Requests per second",
      [{ label: "req/s", stroke: "#2457c5", fill: "rgba(36,87,197,0.08)", width: 2 }],
      [x, col("requests_per_s")]));
    plots.push(chart("usage-latency", "Latency in ms",
      // Points as well as lines: a bucket between two empty ones has no line to draw.
      [{ label: "p50 ms", stroke: "#177245", width: 2, spanGaps: false, points: { show: true, size: 5 } },
       { label: "p99 ms", stroke: "#8a5a00", width: 2, spanGaps: false, points: { show: true, size: 5 } }],
      [x, col("p50_ms"), col("p99_ms")]));
    plots.push(chart("usage-errors", "Errors per bucket",
      [{ label: "4xx", stroke: "#8a5a00", width: 2 },
       { label: "5xx", stroke: "#b3261e", width: 2 },
       { label: "429", stroke: "#6b3fa0", width: 2, dash: [6, 4] }],
      [x, col("errors_4xx"), col("errors_5xx"), col("rate_limited")]));
    plots.push(byName("usage-models-rps", "Requests per second by model", x, report.model_series || []));
    plots.push(byName("usage-keys-rps", "Requests per second by caller", x, report.key_series || []));
    window.addEventListener("resize", function () {
      plots.forEach(function (plot) {
        if (plot) plot.setSize({ width: width(plot.root.parentNode), height: 220 });
      });
    });
    var section = document.getElementById("usage");
    if (section) section.setAttribute("data-charts", "drawn");
  }

  function start() {
    var report = readReport();
    if (report) draw(report);
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
