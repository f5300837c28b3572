/* Draws the finance report's chart (admin) with Chart.js, from the page's json_script
   element #report-data. A static file, not an inline script: the admin runs under a
   Content-Security-Policy without 'unsafe-inline'. */
(function () {
  "use strict";

  function draw() {
    var source = document.getElementById("report-data");
    var canvas = document.getElementById("report-chart");
    if (!source || !canvas || typeof Chart === "undefined") {
      return;
    }
    var data = JSON.parse(source.textContent);
    var colours = {
      deposited: "#2e7d32",
      purchased: "#558b2f",
      granted: "#00838f",
      spent: "#c62828",
      refunded: "#1565c0",
      adjusted_up: "#6a1b9a",
      adjusted_down: "#ef6c00",
      clawed_back: "#ad1457",
      clawback_reversed: "#4527a0",
      expired: "#8d6e63"
    };
    var datasets = Object.keys(colours).map(function (name) {
      return {
        type: "bar",
        label: data.titles[name],
        data: data.series[name],
        backgroundColor: colours[name],
        yAxisID: "flows"
      };
    });
    datasets.push({
      type: "line",
      label: data.titles.closing_liability,
      data: data.liability,
      borderColor: "#37474f",
      backgroundColor: "#37474f",
      pointRadius: data.labels.length > 60 ? 0 : 2,
      tension: 0,
      yAxisID: "liability"
    });
    new Chart(canvas, {
      data: { labels: data.labels, datasets: datasets },
      options: {
        maintainAspectRatio: false,
        animation: false,
        interaction: { mode: "index", intersect: false },
        scales: {
          flows: data.log_scale
            ? { type: "logarithmic", position: "left", title: { display: true, text: "points per day (log scale)" } }
            : { position: "left", beginAtZero: true, title: { display: true, text: "points per day" } },
          liability: { position: "right", beginAtZero: true, grid: { drawOnChartArea: false }, title: { display: true, text: "closing liability" } }
        }
      }
    });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", draw);
  } else {
    draw();
  }
})();
