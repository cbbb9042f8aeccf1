// Copy buttons: <button data-copy="ID"> copies the value of the input #ID to the clipboard.
document.addEventListener("click", function (event) {
  var button = event.target.closest("button[data-copy]");
  if (!button) return;
  var input = document.getElementById(button.getAttribute("data-copy"));
  if (!input) return;
  input.select();
  navigator.clipboard.writeText(input.value).then(function () {
    button.textContent = "Copied";
  });
});
