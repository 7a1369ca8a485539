/* Stock-IT clientside callbacks: live prices from the WebSocket, flashes, stream reconnection, and a
   return to the sign-in page when the session has ended. */
(function () {
  "use strict";

  function decimals(p) {
    var a = Math.abs(p || 0);
    if (!isFinite(a) || a === 0 || a >= 10) { return 2; }
    if (a >= 1) { return 4; }
    return Math.min(10, 3 - Math.floor(Math.log10(a)));
  }

  function fmtPrice(p, d) {
    if (p === null || p === undefined) { return "—"; }
    d = d === undefined ? decimals(p) : d;
    return p.toLocaleString("en-US", {minimumFractionDigits: d, maximumFractionDigits: d});
  }

  function fmtPct(v) {
    if (v === null || v === undefined) { return "—"; }
    return (v > 0 ? "+" : "") + v.toFixed(2) + "%";
  }

  /* A callback answered 401: the session has ended (signed out, expired, password changed). Reload through
     the sign-in page, which brings the user back here. */
  var plainFetch = window.fetch;
  window.fetch = function (input) {
    return plainFetch.apply(this, arguments).then(function (response) {
      var url = typeof input === "string" ? input : (input && input.url) || "";
      if (response.status === 401 && url.indexOf("/_dash-") !== -1) {
        var here = window.location.pathname + window.location.search;
        window.location.assign("/login?next=" + encodeURIComponent(here));
      }
      return response;
    });
  };

  function dirClass(v) { return v > 0 ? " up" : v < 0 ? " down" : ""; }

  // What each watchlist cell shows now, so an unchanged price keeps its class (no new flash).
  var shown = {};
  var flip = {};

  function parse(message) {
    if (!message || !message.data) { return null; }
    try { return JSON.parse(message.data); } catch (e) { return null; }
  }

  /* The browser stage of the latency: from each /ws/prices message, the web server's send to here
     (web_to_browser) and each changed ticker's event time to here (event_to_browser), reported to the
     server every REPORT_MS (POST /api/v1/quality/browser-latency; same origin, with the session). */
  var REPORT_MS = 10000, MAX_SAMPLES = 200;
  var latencySamples = [], lastTickTs = {};

  function recordLatency(msg) {
    if (!msg || msg.type !== "prices") { return; }
    var now = Date.now() / 1000, add = function (stage, s) {
      if (s >= 0 && s <= 3600) {
        latencySamples.push({stage: stage, seconds: Math.round(s * 10000) / 10000});
      }
    };
    if (typeof msg.server_ts === "number") { add("web_to_browser", now - msg.server_ts); }
    var prices = msg.prices || {};
    Object.keys(prices).forEach(function (sym) {
      var ts = prices[sym] && prices[sym].ts;
      if (typeof ts === "number" && lastTickTs[sym] !== undefined && ts !== lastTickTs[sym]) {
        add("event_to_browser", now - ts);
      }
      lastTickTs[sym] = ts;
    });
    if (latencySamples.length > MAX_SAMPLES) { latencySamples = latencySamples.slice(-MAX_SAMPLES); }
  }

  window.setInterval(function () {
    if (!latencySamples.length) { return; }
    var body = JSON.stringify({samples: latencySamples});
    latencySamples = [];
    plainFetch.call(window, "/api/v1/quality/browser-latency", {
      method: "POST", body: body, credentials: "same-origin", headers: {"Content-Type": "application/json"}})
      .catch(function () { /* a lost report is a lost measurement, nothing more */ });
  }, REPORT_MS);

  window.dash_clientside = Object.assign({}, window.dash_clientside, {
    stockit: {
      /* Data quality page: measure the browser stage from a /ws/prices message (no output changes). */
      measureLatency: function (message) {
        recordLatency(parse(message));
        return window.dash_clientside.no_update;
      },

      /* Give a WebSocket component its absolute URL, and a fresh one when it has closed. */
      wsUrl: function (n, state, url, path) {
        var proto = window.location.protocol === "https:" ? "wss://" : "ws://";
        var base = proto + window.location.host + path;
        if (!url) { return base; }
        if (state && state.readyState === 3) {
          return base + (base.indexOf("?") >= 0 ? "&" : "?") + "reconnect=" + n;
        }
        return window.dash_clientside.no_update;
      },

      /* Watchlist: tick every price cell from a /ws/prices message. */
      prices: function (message, selected) {
        var ctx = window.dash_clientside.callback_context;
        var nu = window.dash_clientside.no_update;
        var msg = parse(message);
        if (!msg || msg.type !== "prices") { throw window.dash_clientside.PreventUpdate; }
        recordLatency(msg);
        var prices = msg.prices || {};
        var ids = ctx.outputs_list[0].map(function (o) { return o.id.symbol; });
        var out = [[], [], [], [], []];
        ids.forEach(function (sym) {
          var t = prices[sym];
          var cur = shown[sym] || {text: null, cls: "num wl-last", ch: "—", chCls: "num wl-change", ts: ""};
          if (t) {
            var text = fmtPrice(t.price);
            if (cur.text !== null && text !== cur.text) {
              var up = t.price > (cur.price === undefined ? t.prev_price : cur.price);
              flip[sym] = !flip[sym];
              cur.cls = "num wl-last flash-" + (up ? "up" : "down") + (flip[sym] ? "-a" : "-b") +
                (up ? " tick-up" : " tick-down");
            }
            cur.text = text;
            cur.price = t.price;
            cur.ch = fmtPct(t.change_pct);
            cur.chCls = "num wl-change" + dirClass(t.change_pct);
            cur.ts = String(t.ts);
          }
          shown[sym] = cur;
          out[0].push(cur.text === null ? "—" : cur.text);
          out[1].push(cur.cls);
          out[2].push(cur.ch);
          out[3].push(cur.chCls);
          out[4].push(cur.ts);
        });
        var head = prices[selected];
        var headPrice = head ? fmtPrice(head.price) : nu;
        var headChange = head ? fmtPct(head.change_pct) + "  (" + (head.change >= 0 ? "+" : "") +
          fmtPrice(head.change, decimals(head.price)) + ")" : nu;
        var headCls = head ? "head-change num" + dirClass(head.change_pct) : nu;
        return out.concat([headPrice, headChange, headCls]);
      }
    }
  });
})();
