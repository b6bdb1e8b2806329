// ten's dashboard, made live: the page works without this file (links, forms, refresh).
// With it, the event stream of the session (`/live/events`, the API's events narrowed to
// what the session may see) refreshes the part of the page marked `#live` in place, and an
// instance page that follows its logs appends each new line.
(function () {
  "use strict";
  var body = document.body;
  var live = document.getElementById("live");
  if (live && window.EventSource && body.dataset.events) {
    var pending = null;
    var refresh = function () {
      pending = null;
      fetch(location.href, { credentials: "same-origin" })
        .then(function (response) {
          if (response.status === 401) {
            location.reload();
            return null;
          }
          return response.text();
        })
        .then(function (html) {
          if (!html) {
            return;
          }
          var page = new DOMParser().parseFromString(html, "text/html");
          var fresh = page.getElementById("live");
          if (fresh) {
            live.innerHTML = fresh.innerHTML;
            body.dataset.updates = String(Number(body.dataset.updates || 0) + 1);
          }
        })
        .catch(function () {});
    };
    var events = new EventSource(body.dataset.events);
    events.onopen = function () {
      body.dataset.live = "on";
    };
    events.onmessage = function () {
      if (!pending) {
        pending = setTimeout(refresh, 150);
      }
    };
  }
  var lines = document.getElementById("log-lines");
  if (lines && window.EventSource && body.dataset.follow) {
    var logs = new EventSource(body.dataset.follow);
    logs.onopen = function () {
      body.dataset.following = "on";
    };
    logs.onmessage = function (message) {
      var line = JSON.parse(message.data);
      var row = document.createElement("div");
      row.className = "line " + line.stream;
      var at = document.createElement("time");
      at.textContent = new Date(line.at_unix_ms).toISOString().slice(0, 19).replace("T", " ");
      row.appendChild(at);
      row.appendChild(document.createTextNode(" " + line.text));
      lines.appendChild(row);
      lines.scrollTop = lines.scrollHeight;
    };
  }
})();
