// Upload with a progress bar (XHR upload progress). Without JavaScript the form posts normally.
document.addEventListener("DOMContentLoaded", function () {
  var form = document.querySelector("form[data-upload]");
  if (!form || !window.FormData) return;
  var box = form.querySelector("[data-progress]");
  var bar = box.querySelector("progress");
  var text = box.querySelector("[data-progress-text]");
  var result = document.querySelector("[data-upload-result]");
  form.addEventListener("submit", function (event) {
    if (!form.querySelector("input[type=file]").files.length) return; // let the server say what is missing
    event.preventDefault();
    var xhr = new XMLHttpRequest();
    xhr.open("POST", form.action);
    xhr.setRequestHeader("X-Requested-With", "XMLHttpRequest");
    box.hidden = false;
    bar.value = 0;
    form.querySelector("button[type=submit]").disabled = true;
    xhr.upload.addEventListener("progress", function (e) {
      if (e.lengthComputable) {
        bar.value = Math.round((e.loaded / e.total) * 100);
        text.textContent = bar.value + " %";
      }
    });
    xhr.upload.addEventListener("load", function () {
      bar.removeAttribute("value"); // indeterminate while the server checks the readings
      text.textContent = form.dataset.checking || "";
    });
    xhr.addEventListener("load", function () {
      var body = null;
      try { body = JSON.parse(xhr.responseText); } catch (e) { body = null; }
      if (body && body.ok) { window.location.href = body.redirect; return; }
      form.querySelector("button[type=submit]").disabled = false;
      box.hidden = true;
      if (body && body.detail) { showErrors(body); return; }
      // Anything else: send the form the ordinary way so the server renders the errors.
      form.removeAttribute("data-upload");
      HTMLFormElement.prototype.submit.call(form);
    });
    xhr.addEventListener("error", function () {
      box.hidden = true;
      form.querySelector("button[type=submit]").disabled = false;
      HTMLFormElement.prototype.submit.call(form);
    });
    xhr.send(new FormData(form));
  });

  function cell(tag, value) {
    var el = document.createElement(tag);
    el.textContent = value;
    return el;
  }

  function showErrors(body) {
    var alert = document.createElement("div");
    alert.className = "alert error";
    alert.setAttribute("role", "alert");
    alert.dataset.testid = "upload-errors";
    alert.appendChild(cell("strong", form.dataset.nothing || ""));
    alert.appendChild(document.createTextNode(" " + body.detail));
    if (body.errors && body.errors.length) {
      var table = document.createElement("table");
      table.className = "row-errors";
      var head = table.createTHead().insertRow();
      [form.dataset.row, form.dataset.field, form.dataset.problem].forEach(function (h) { head.appendChild(cell("th", h || "")); });
      var tbody = table.createTBody();
      body.errors.forEach(function (e) {
        var tr = tbody.insertRow();
        [e.row, e.field, e.reason].forEach(function (v) { tr.appendChild(cell("td", v)); });
      });
      alert.appendChild(table);
    }
    result.replaceChildren(alert);
  }
});
