/* The back-office's copy buttons next to shortened references (short_reference in
   audit/backoffice/pages.py): a click copies the whole reference. A static file, so the
   admin's Content-Security-Policy (script-src 'self') allows it. */
document.addEventListener("click", function (event) {
  var button = event.target.closest ? event.target.closest(".copy-ref") : null;
  if (!button) { return; }
  event.preventDefault();
  var text = button.getAttribute("data-copy");
  var done = function () { button.textContent = "✓"; button.classList.add("copied"); };
  if (navigator.clipboard && window.isSecureContext) {
    navigator.clipboard.writeText(text).then(done);
  } else {
    var area = document.createElement("textarea");
    area.value = text;
    document.body.appendChild(area);
    area.select();
    document.execCommand("copy");
    document.body.removeChild(area);
    done();
  }
});
