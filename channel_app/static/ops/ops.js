// channel-push ops page: live charts from /sse/status/stream, in plain JavaScript and SVG.
// No libraries and nothing from a CDN, so the page works on an offline ops network.
"use strict";

(function () {
  var WINDOW_POINTS = 180; // at the default 2 s per status event: six minutes
  var SVG_NS = "http://www.w3.org/2000/svg";
  var WIDTH = 720, HEIGHT = 220;
  var PAD = { left: 48, right: 12, top: 12, bottom: 26 };

  var CHARTS = {
    connections: {
      svg: "chart-connections",
      legend: "legend-connections",
      series: [
        { key: "connections", label: "connections", color: "#2f7df6", width: 5, read: function (s) { return s.connections; } },
        { key: "clients", label: "clients", color: "#4ade80", width: 2, read: function (s) { return s.connected_clients; } }
      ]
    },
    rates: {
      svg: "chart-rates",
      legend: "legend-rates",
      series: [
        // Widest first: equal series (every call publishes one event) stay visible as stacked bands.
        { key: "published", label: "published/s", color: "#a78bfa", width: 7, read: rate("events_published_per_s") },
        { key: "delivered", label: "delivered/s", color: "#2f7df6", width: 4, read: rate("events_delivered_per_s") },
        { key: "calls", label: "function calls/s", color: "#f59e0b", width: 2, dash: "6 4", read: rate("function_calls_per_s") },
        { key: "dropped", label: "dropped/s", color: "#ef4444", width: 2, read: rate("events_dropped_per_s") }
      ]
    }
  };

  var samples = [];

  function rate(name) {
    return function (s) { return (s.rates && s.rates[name]) || 0; };
  }

  var TOKEN_KEY = "channel-push-ops-token";
  var RETRY_MS = 3000; // until the stream's own `retry:` hint says otherwise

  // The ops token comes in the address's fragment (/ops#token=...), which the browser
  // never sends, so no proxy's access log holds it; `?token=` (older links) works too.
  // It is taken out of the address bar and history and kept for this tab only
  // (sessionStorage), so a reload still finds it. The status stream is read with
  // fetch() and the token in its Authorization header, never in a URL
  // (EventSource cannot send headers).
  function opsToken() {
    var fragment = new URLSearchParams(window.location.hash.replace(/^#/, ""));
    var params = new URLSearchParams(window.location.search);
    var token = fragment.get("token") || params.get("token");
    if (token) {
      params.delete("token");
      var rest = params.toString();
      window.history.replaceState(null, "", window.location.pathname + (rest ? "?" + rest : ""));
      keepToken(token);
      return token;
    }
    return keptToken();
  }

  function keepToken(token) {
    try {
      window.sessionStorage.setItem(TOKEN_KEY, token);
    } catch (unavailable) {
      // storage off: the page works until it is reloaded
    }
  }

  function keptToken() {
    try {
      return window.sessionStorage.getItem(TOKEN_KEY);
    } catch (unavailable) {
      return null;
    }
  }

  function el(name, attrs, parent) {
    var node = document.createElementNS(SVG_NS, name);
    Object.keys(attrs).forEach(function (key) { node.setAttribute(key, String(attrs[key])); });
    if (parent) parent.appendChild(node);
    return node;
  }

  // The top of the y axis: four gridline steps of a round size (0.25, 0.5, 1, 2, 2.5, 5, 10, ...).
  function niceTop(peak) {
    var wanted = peak > 0 ? peak / 4 : 0.25;
    var magnitude = Math.pow(10, Math.floor(Math.log10(wanted)));
    var steps = [1, 2, 2.5, 5, 10];
    for (var i = 0; i < steps.length; i++) {
      if (steps[i] * magnitude >= wanted) return 4 * steps[i] * magnitude;
    }
    return 40 * magnitude;
  }

  function formatNumber(value) {
    if (value >= 1e6) return (value / 1e6).toFixed(1) + "M";
    if (value >= 1e4) return (value / 1e3).toFixed(0) + "k";
    if (value >= 1e3) return (value / 1e3).toFixed(1) + "k";
    if (value >= 10 || Number.isInteger(value)) return value.toFixed(0);
    return value.toFixed(value >= 1 ? 1 : 2);
  }

  function formatClock(iso) {
    var date = new Date(iso);
    return isNaN(date.getTime()) ? "" : date.toLocaleTimeString([], { hour12: false });
  }

  function drawChart(chart) {
    var svg = document.getElementById(chart.svg);
    while (svg.firstChild) svg.removeChild(svg.firstChild);
    var plotW = WIDTH - PAD.left - PAD.right, plotH = HEIGHT - PAD.top - PAD.bottom;
    var peak = 0;
    chart.series.forEach(function (series) {
      samples.forEach(function (s) { peak = Math.max(peak, series.read(s)); });
    });
    var top = niceTop(peak);
    var grid = el("g", { "class": "grid" }, svg);
    for (var i = 0; i <= 4; i++) {
      var y = PAD.top + plotH - (plotH * i) / 4;
      el("line", { x1: PAD.left, x2: WIDTH - PAD.right, y1: y, y2: y }, grid);
      var label = el("text", { x: PAD.left - 6, y: y + 4, "text-anchor": "end" }, grid);
      label.textContent = formatNumber((top * i) / 4);
    }
    if (samples.length) {
      var first = el("text", { x: PAD.left, y: HEIGHT - 6, "text-anchor": "start" }, grid);
      first.textContent = formatClock(samples[0].timestamp);
      var last = el("text", { x: WIDTH - PAD.right, y: HEIGHT - 6, "text-anchor": "end" }, grid);
      last.textContent = formatClock(samples[samples.length - 1].timestamp);
    }
    // The samples held so far span the width; the newest is at the right edge.
    var step = plotW / Math.max(1, samples.length - 1);
    chart.series.forEach(function (series) {
      var points = samples.map(function (s, index) {
        var x = PAD.left + index * step;
        var y = PAD.top + plotH - (plotH * series.read(s)) / top;
        return x.toFixed(1) + "," + y.toFixed(1);
      });
      var line = el("polyline", {
        "class": "series",
        "data-series": series.key,
        points: points.join(" "),
        fill: "none",
        stroke: series.color,
        "stroke-width": series.width,
        "stroke-linejoin": "round",
        "stroke-linecap": "round"
      }, svg);
      if (series.dash) line.setAttribute("stroke-dasharray", series.dash);
    });
  }

  function drawLegend(chart) {
    var list = document.getElementById(chart.legend);
    list.textContent = "";
    var latest = samples[samples.length - 1];
    chart.series.forEach(function (series) {
      var item = document.createElement("li");
      var swatch = document.createElement("span");
      swatch.className = "swatch";
      swatch.style.background = series.color;
      item.appendChild(swatch);
      item.appendChild(document.createTextNode(series.label + " " + (latest ? formatNumber(series.read(latest)) : "–")));
      list.appendChild(item);
    });
  }

  function formatBytes(bytes) {
    if (bytes == null) return "n/a";
    var units = ["B", "KiB", "MiB", "GiB"], value = bytes, unit = 0;
    while (value >= 1024 && unit < units.length - 1) { value /= 1024; unit++; }
    return value.toFixed(unit ? 1 : 0) + " " + units[unit];
  }

  function formatUptime(seconds) {
    var s = Math.floor(seconds), d = Math.floor(s / 86400), h = Math.floor((s % 86400) / 3600);
    var m = Math.floor((s % 3600) / 60);
    if (d) return d + "d " + h + "h";
    if (h) return h + "h " + m + "m";
    return m + "m " + (s % 60) + "s";
  }

  function setText(id, text) {
    document.getElementById(id).textContent = text;
  }

  function setState(state, text) {
    var badge = document.getElementById("state");
    badge.setAttribute("data-state", state);
    badge.textContent = text;
  }

  function render(latest) {
    setText("instance", latest.instance || "");
    setText("connections", formatNumber(latest.connections));
    setText("clients", formatNumber(latest.connected_clients));
    setText("delivered-rate", formatNumber(rate("events_delivered_per_s")(latest)));
    setText("calls-rate", formatNumber(rate("function_calls_per_s")(latest)));
    setText("memory", formatBytes(latest.memory && latest.memory.rss_bytes));
    var cpu = latest.cpu && latest.cpu.percent;
    setText("cpu", cpu == null ? "–" : cpu.toFixed(1) + " %");
    setText("uptime", formatUptime(latest.uptime_s || 0));
    setText("broker", latest.broker ? latest.broker.backend + (latest.broker.healthy ? " ✓" : " ✗") : "–");
    setText("updated", formatClock(latest.timestamp));
    setState(latest.status, latest.status);
    Object.keys(CHARTS).forEach(function (name) {
      drawChart(CHARTS[name]);
      drawLegend(CHARTS[name]);
    });
  }

  function onStatus(data) {
    var latest = JSON.parse(data);
    samples.push(latest);
    if (samples.length > WINDOW_POINTS) samples.shift();
    render(latest);
  }

  // One SSE frame of the status stream: `retry:` and `event: status` with its data.
  function onFrame(frame) {
    var event = "message", data = [];
    frame.split(/\r\n|\r|\n/).forEach(function (line) {
      var colon = line.indexOf(":");
      var field = colon < 0 ? line : line.slice(0, colon);
      var value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
      if (field === "event") event = value;
      else if (field === "data") data.push(value);
      else if (field === "retry" && /^\d+$/.test(value)) RETRY_MS = parseInt(value, 10);
    });
    if (event === "status" && data.length) onStatus(data.join("\n"));
  }

  function connect(token) {
    var headers = token ? { Authorization: "Bearer " + token } : {};
    fetch("sse/status/stream", { headers: headers, cache: "no-store", credentials: "omit" }).then(function (response) {
      if (response.status === 401 || response.status === 403) {
        setState("refused", "refused: open /ops#token=<OPS_TOKEN>");
        return null;
      }
      if (!response.ok || !response.body) throw new Error("status stream answered " + response.status);
      var reader = response.body.getReader();
      var decoder = new TextDecoder();
      var buffered = "";
      function read() {
        return reader.read().then(function (chunk) {
          if (chunk.done) throw new Error("status stream ended");
          buffered += decoder.decode(chunk.value, { stream: true });
          var frames = buffered.split(/\r\n\r\n|\n\n|\r\r/);
          buffered = frames.pop();
          frames.forEach(onFrame);
          return read();
        });
      }
      return read();
    }).catch(function () {
      // Ended (a drain, a restart) or unreachable: come back after the stream's retry hint.
      setState("reconnecting", "reconnecting");
      setTimeout(function () { connect(token); }, RETRY_MS);
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    Object.keys(CHARTS).forEach(function (name) {
      drawChart(CHARTS[name]);
      drawLegend(CHARTS[name]);
    });
    connect(opsToken());
  });

  // A new #token= in the same tab (say, after "refused") changes only the fragment, which
  // reloads nothing: take it up by loading the page again, which keeps and strips it.
  window.addEventListener("hashchange", function () {
    if (new URLSearchParams(window.location.hash.replace(/^#/, "")).get("token")) window.location.reload();
  });
})();
