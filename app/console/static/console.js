// Live updates of the runs console (no build step, no dependency). The run
// page listens to its server-sent events; the runs list fetches itself
// again. Both replace the #live section with the server's rendering, and
// leave it alone while the keyboard focus is inside it.
(function () {
  'use strict';
  var live = document.getElementById('live');
  var status = document.getElementById('live-status');
  if (!live) { return; }
  function say(text) { if (status) { status.textContent = text; } }
  function swap(html) {
    if (live.contains(document.activeElement) && document.activeElement !== document.body) { return; }
    live.innerHTML = html;
    say('Live · updated ' + new Date().toLocaleTimeString());
  }
  var src = live.getAttribute('data-events');
  if (src && window.EventSource) {
    var es = new EventSource(src);
    es.addEventListener('update', function (e) {
      try { swap(JSON.parse(e.data).html); } catch (err) { say('Live update unreadable; reload the page'); }
    });
    es.onerror = function () { say('Live updates interrupted; reconnecting…'); };
    return;
  }
  var every = Number(live.getAttribute('data-refresh')) || 0;
  if (!every || !window.fetch || !window.DOMParser) { return; }
  setInterval(function () {
    fetch(window.location.href, { credentials: 'same-origin', headers: { 'Accept': 'text/html' } })
      .then(function (r) { if (!r.ok) { throw new Error('HTTP ' + r.status); } return r.text(); })
      .then(function (text) {
        var next = new DOMParser().parseFromString(text, 'text/html').getElementById('live');
        if (next) { swap(next.innerHTML); }
      })
      .catch(function () { say('Live update failed; retrying'); });
  }, every * 1000);
}());
