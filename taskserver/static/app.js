// crowdbridge worker pages: keyboard shortcuts for choices and mouse selection of spans.
// Loaded from this site only (the Content-Security-Policy allows no inline script). It never
// writes markup: it only ticks checkboxes and moves focus, so every page works without it.
(function () {
  "use strict";

  function sections() {
    return Array.prototype.slice.call(document.querySelectorAll("section[data-shortcuts]"));
  }

  function answered(section) {
    var field = section.querySelector("fieldset.choice");
    return !field || field.querySelector("input:checked") !== null;
  }

  function current() {
    var all = sections();
    var active = document.activeElement && document.activeElement.closest
      ? document.activeElement.closest("section[data-shortcuts]") : null;
    if (active) { return active; }
    for (var i = 0; i < all.length; i++) { if (!answered(all[i])) { return all[i]; } }
    return all.length ? all[all.length - 1] : null;
  }

  function mark(section) {
    sections().forEach(function (s) { s.classList.toggle("current", s === section); });
  }

  document.addEventListener("keydown", function (ev) {
    if (ev.ctrlKey || ev.metaKey || ev.altKey) { return; }
    var t = ev.target;
    if (t && (t.tagName === "TEXTAREA" || (t.tagName === "INPUT" && t.type === "text"))) { return; }
    if (!/^[0-9]$/.test(ev.key)) { return; }
    var section = current();
    if (!section) { return; }
    var field = section.querySelector("fieldset.choice");
    var input = field && field.querySelector('input[data-key="' + ev.key + '"]');
    if (!input) { return; }
    ev.preventDefault();
    input.checked = true;
    input.dispatchEvent(new Event("change", { bubbles: true }));
    var all = sections();
    var next = all[all.indexOf(section) + 1];
    if (next) { next.focus(); mark(next); } else { mark(section); }
  });

  document.addEventListener("DOMContentLoaded", function () {
    var first = sections()[0];
    if (first) { mark(first); }
  });

  // Mouse selection over a span text ticks every token it covers. A drag that starts and ends
  // on one word would also "click" its label and untick it again, so that click is swallowed.
  var swallowClick = false;
  document.addEventListener("mouseup", function (ev) {
    var box = ev.target && ev.target.closest ? ev.target.closest("[data-cb-span-text]") : null;
    var sel = window.getSelection();
    if (!box || !sel || sel.isCollapsed || sel.rangeCount === 0) { return; }
    var range = sel.getRangeAt(0);
    box.querySelectorAll("label.tok").forEach(function (label) {
      if (range.intersectsNode(label.querySelector("span"))) {
        var input = label.querySelector("input");
        input.checked = true;
        input.dispatchEvent(new Event("change", { bubbles: true }));
      }
    });
    sel.removeAllRanges();
    swallowClick = true;
    setTimeout(function () { swallowClick = false; }, 0);
  });
  document.addEventListener("click", function (ev) {
    if (swallowClick) { ev.preventDefault(); ev.stopPropagation(); swallowClick = false; }
  }, true);

  // A double click on "Submit" sends the form once.
  document.addEventListener("submit", function (ev) {
    var form = ev.target;
    if (form.dataset.sent) { ev.preventDefault(); return; }
    form.dataset.sent = "1";
  });
})();
