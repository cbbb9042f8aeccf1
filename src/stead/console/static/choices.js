// Fields that apply to one choice of a form. <fieldset data-shown-when="NAME" data-shown-for="A B">
// is shown, and its inputs sent, only while the form's control NAME (a select or a group of
// radio buttons) has the value A or B; otherwise it is hidden and disabled, so Tab skips it.
// Without JavaScript every such fieldset stays visible, its legend says when it applies, and the
// server ignores the fields of the choices not taken.
(function () {
  function update(form) {
    form.querySelectorAll("fieldset[data-shown-when]").forEach(function (fieldset) {
      var control = form.elements.namedItem(fieldset.getAttribute("data-shown-when"));
      if (!control) { return; }
      var values = fieldset.getAttribute("data-shown-for").split(" ");
      var applies = values.indexOf(control.value) !== -1;
      fieldset.hidden = !applies;
      fieldset.disabled = !applies;
    });
  }
  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("form").forEach(function (form) {
      if (!form.querySelector("fieldset[data-shown-when]")) { return; }
      update(form);
      form.addEventListener("change", function () { update(form); });
    });
  });
})();
