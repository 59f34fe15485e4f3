// benchpilot report: filters for the list of cases that did not succeed. No network, no libraries.
(function () {
  "use strict";
  var KEYS = ["model", "prompt", "task", "status", "error"];

  function value(id) {
    var el = document.getElementById("f-" + id);
    return el ? el.value : "";
  }

  function matches(el, wanted, text) {
    for (var i = 0; i < KEYS.length; i++) {
      var w = wanted[KEYS[i]];
      if (w !== "" && el.getAttribute("data-" + KEYS[i]) !== w) { return false; }
    }
    return text === "" || el.textContent.toLowerCase().indexOf(text) !== -1;
  }

  function apply() {
    var wanted = {};
    KEYS.forEach(function (k) { wanted[k] = value(k); });
    var text = value("text").trim().toLowerCase();
    var shown = 0, cases = 0;
    document.querySelectorAll("#buckets tbody tr").forEach(function (tr) {
      var ok = matches(tr, wanted, "");
      tr.hidden = !ok;
      if (ok) { cases += parseInt(tr.getAttribute("data-cases"), 10); }
    });
    var listed = document.querySelectorAll("#case-list details.case");
    listed.forEach(function (d) {
      var ok = matches(d, wanted, text);
      d.hidden = !ok;
      if (ok) { shown += 1; }
    });
    var out = document.getElementById("case-count");
    if (out) {
      out.textContent = cases + " non-success cases match; " + shown + " of the " + listed.length +
        " listed cases shown";
      out.setAttribute("data-matching", String(cases));
      out.setAttribute("data-shown", String(shown));
    }
  }

  document.addEventListener("DOMContentLoaded", function () {
    KEYS.concat(["text"]).forEach(function (k) {
      var el = document.getElementById("f-" + k);
      if (el) { el.addEventListener(k === "text" ? "input" : "change", apply); }
    });
    var reset = document.getElementById("f-reset");
    if (reset) {
      reset.addEventListener("click", function () {
        KEYS.concat(["text"]).forEach(function (k) {
          var el = document.getElementById("f-" + k);
          if (el) { el.value = ""; }
        });
        apply();
      });
    }
    apply();
  });
}());
