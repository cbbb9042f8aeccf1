// The console's only script (the CSP allows no inline script). Every page works without it.
// Error summaries take focus so that keyboard and screen-reader users hear them first, also
// after htmx swaps a form's errors in.
(function () {
  function focusSummary(root) {
    var summary = (root || document).querySelector("#error-summary");
    if (summary) { summary.focus(); }
  }
  document.addEventListener("DOMContentLoaded", function () { focusSummary(document); });
  document.addEventListener("htmx:afterSettle", function (event) { focusSummary(event.target); });
  // A list's new page replaced the link that asked for it: focus goes to the new results
  // (not back to the top of the document), so Tab continues from there.
  document.addEventListener("htmx:afterSettle", function () {
    var results = document.getElementById("results");
    if (results && (document.activeElement === document.body || !document.activeElement)) {
      results.setAttribute("tabindex", "-1");
      results.focus();
    }
  });
})();
