// Copy buttons: <button data-copy="ID" hidden> copies the value of the input #ID. Without
// JavaScript the button stays hidden and the value can be selected and copied by hand.
(function () {
  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("button[data-copy]").forEach(function (button) {
      var id = button.getAttribute("data-copy");
      var input = document.getElementById(id);
      var status = document.querySelector('[data-copy-status="' + id + '"]');
      if (!input) { return; }
      button.hidden = false;
      button.addEventListener("click", function () {
        function done(text) { if (status) { status.textContent = text; } }
        input.select();
        if (navigator.clipboard && navigator.clipboard.writeText) {
          navigator.clipboard.writeText(input.value).then(
            function () { done("Copied."); },
            function () { done("Selected: press Ctrl+C to copy."); }
          );
        } else {
          done("Selected: press Ctrl+C to copy.");
        }
      });
    });
  });
})();
