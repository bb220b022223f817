/* govdata reports site: draws the charts embedded in the page (vega-lite specs in
   <script type="application/json" data-chart="ID">) with the vendored vega-embed. No network. */
(function () {
  "use strict";
  function draw() {
    var specs = document.querySelectorAll("script[type='application/json'][data-chart]");
    Array.prototype.forEach.call(specs, function (node) {
      var target = document.getElementById(node.getAttribute("data-chart"));
      if (!target) { return; }
      if (typeof vegaEmbed !== "function") {
        target.textContent = "图表无法显示 The chart library did not load; the numbers are in the tables below.";
        return;
      }
      vegaEmbed(target, JSON.parse(node.textContent), { actions: false, renderer: "svg" })
        .then(function () { target.setAttribute("data-rendered", "true"); })
        .catch(function (error) {
          target.setAttribute("data-rendered", "error");
          target.textContent = "图表无法显示 Chart could not be drawn: " + error;
        });
    });
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", draw);
  } else {
    draw();
  }
})();
