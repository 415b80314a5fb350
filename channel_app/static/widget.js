/*!
 * channel-push widget. Plain JavaScript, no build step; served at GET /widget.js.
 *
 *   <script src="https://push.example.com/widget.js"></script>
 *   <script>
 *     var push = ChannelPush.connect({
 *       clientId: "user-42",                       // the site's own user id (Channel memberId)
 *       getToken: function () { return fetch("/push-token").then(function (r) { return r.text(); }); },
 *       onStatus: function (state) { ... },        // connecting | open | retrying | closed
 *       onEvent: function (detail) { ... },        // also: window "channelpush:event"
 *       topics: ["promo", "chat:room-7"],          // optional; the token's `topics` claim must allow them
 *       events: { chunk: function (data, eventId) { ... } }  // optional: other event names (publish API)
 *     });
 *     // push.close();
 *   </script>
 *
 * How it behaves:
 * - One EventSource on /sse/connect. The token travels as the `token` query
 *   parameter because EventSource cannot send headers: keep tokens short-lived.
 * - redirect: navigates with location.assign() only to http(s) URLs (the server
 *   already enforced its allow-list; anything else is refused here as well).
 * - notification: a small toast (role="status", dismissible, inline styles),
 *   unless onNotification is given.
 * - custom: a DOM CustomEvent "channelpush:event" on document (it reaches window
 *   listeners too) and onEvent(detail).
 * - Any other event name (sent by the site's backend through /api/publish, to
 *   this client or to one of its topics) goes to options.events[name](data, eventId),
 *   in the order published, once each, also across reconnects.
 * - Every event it acts on is acknowledged: POST /sse/ack with the outcome
 *   (done | refused | declined | failed). The ack is a CORS-simple request
 *   (text/plain, token in the body) sent with keepalive, so it survives the
 *   navigation a redirect starts.
 * - The browser reconnects by itself after a dropped stream. When it gives up
 *   (any non-200 answer), the widget asks GET /sse/check for the reason, since
 *   EventSource does not expose the status: on 401 it fetches a fresh token with
 *   getToken, on 400/403 it stops, otherwise it retries with capped exponential
 *   backoff and jitter (at least Retry-After), resuming from the last event id.
 *   Events replayed after a reconnect are recognised by id and not acted on twice.
 * - With getToken, a token is renewed shortly before it expires: a second stream opens with
 *   the new token and the last event id, then the old one closes.
 * - pagehide closes the stream cleanly; a page restored from the back/forward
 *   cache reconnects as a freshly loaded page does, without replaying what was
 *   sent while it was hidden (the page the visitor was on then acted on it).
 * - Loaded async or defer: functions pushed onto window.channelPushQueue run with
 *   ChannelPush once the script has run (at once after that); a page whose script
 *   never loads (the service unreachable) runs none of them and throws nothing.
 * - One connection per clientId and service on a page: a second connect() for
 *   them (the widget embedded twice) returns the live one, with a console
 *   warning, rather than acting on every event twice and taking another of the
 *   client's MAX_CONNECTIONS_PER_CLIENT slots. close() it to connect anew. The
 *   script loaded twice keeps its first copy.
 */
(function (global) {
  "use strict";

  if (global.ChannelPush && global.ChannelPush.version) {
    return;
  }

  var VERSION = "1.0.0";
  var STATES = { connecting: "connecting", open: "open", retrying: "retrying", closed: "closed" };
  var REMEMBERED_IDS = 256;
  var TOAST_LIMIT = 3;
  var TOAST_COLORS = { info: "#2563eb", success: "#16a34a", warning: "#d97706", error: "#dc2626" };
  var FONT_STACK =
    'system-ui, -apple-system, "Segoe UI", Roboto, "Apple SD Gothic Neo", "Malgun Gothic", ' +
    '"Noto Sans KR", "Noto Sans CJK KR", NanumGothic, sans-serif';

  var currentScript = global.document && global.document.currentScript;
  var DEFAULT_BASE = currentScript && currentScript.src ? new URL(".", currentScript.src).href : null;

  function noop() {}

  function withoutTrailingSlash(url) {
    return String(url).replace(/\/+$/, "");
  }

  function httpUrlOrNull(raw) {
    if (typeof raw !== "string") {
      return null; // new URL(undefined) would resolve "undefined" as a relative path
    }
    try {
      var parsed = new URL(raw, global.location.href);
      return parsed.protocol === "http:" || parsed.protocol === "https:" ? parsed.href : null;
    } catch (invalid) {
      return null;
    }
  }

  // Milliseconds since the epoch at which a JWT expires, or null for anything else.
  // Read only to plan a renewal: the server is what verifies tokens.
  function jwtExpiryMs(token) {
    try {
      var payload = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
      var claims = JSON.parse(global.atob(payload + "===".slice((payload.length + 3) % 4)));
      return typeof claims.exp === "number" ? claims.exp * 1000 : null;
    } catch (notAJwt) {
      return null;
    }
  }

  function serverClockOffsetMs(connectedEvent) {
    try {
      var serverTime = Date.parse(JSON.parse(connectedEvent.data).serverTime);
      return isNaN(serverTime) ? 0 : serverTime - Date.now();
    } catch (notJson) {
      return 0;
    }
  }

  function backoffDelay(attempt, initialMs, maxMs) {
    var ceiling = Math.min(maxMs, initialMs * Math.pow(2, attempt));
    return Math.round(ceiling / 2 + Math.random() * (ceiling / 2)); // "equal jitter"
  }

  function Connection(options) {
    if (!options || typeof options.clientId !== "string" || !options.clientId) {
      throw new TypeError("ChannelPush.connect: clientId is required");
    }
    var hasToken = typeof options.token === "string" && options.token.trim() !== "";
    if (!hasToken && typeof options.getToken !== "function") {
      // A blank or non-string token without getToken retried forever, each time failing to call getToken.
      throw new TypeError("ChannelPush.connect: token (a non-empty string) or getToken is required");
    }
    var base = options.url || DEFAULT_BASE;
    if (!base) {
      throw new TypeError("ChannelPush.connect: url is required when the script was not loaded from the service");
    }
    var topics = options.topics || [];
    if (!Array.isArray(topics) || topics.some(function (topic) { return typeof topic !== "string" || !topic; })) {
      throw new TypeError("ChannelPush.connect: topics must be an array of topic names");
    }
    var retry = options.retry || {};
    this.clientId = options.clientId;
    this._topicsQuery = topics.length ? "&topics=" + encodeURIComponent(topics.join(",")) : "";
    this.status = STATES.closed;
    this.lastEventId = null;
    this._base = withoutTrailingSlash(base);
    this._options = options;
    this._token = (typeof options.token === "string" && options.token.trim()) || null;
    this._initialMs = retry.initialMs || 1000;
    this._maxMs = retry.maxMs || 30000;
    this._attempt = 0;
    this._source = null;
    this._timer = null;
    this._renewTimer = null;
    this._previous = null;
    this._pendingToken = null;
    this._stopped = false;
    this._seen = [];
    this._seenSet = {};
    this._onPageHide = this._suspend.bind(this);
    this._onPageShow = this._resume.bind(this);
    global.addEventListener("pagehide", this._onPageHide);
    global.addEventListener("pageshow", this._onPageShow);
    if (!options.onNotification) {
      prepareToastRegion();
    }
    this._open();
  }

  Connection.prototype.close = function () {
    this._stopped = true;
    global.removeEventListener("pagehide", this._onPageHide);
    global.removeEventListener("pageshow", this._onPageShow);
    this._teardown();
    this._setStatus(STATES.closed, { reason: "closed" });
  };

  Connection.prototype._suspend = function () {
    this._teardown();
    this._setStatus(STATES.closed, { reason: "pagehide" });
  };

  Connection.prototype._resume = function (event) {
    if (event.persisted && !this._stopped && !this._source) {
      this._attempt = 0;
      // Events sent while this page sat in the cache went to the page the visitor was
      // on then, which acted on them; resumed from here, they would be replayed and
      // acted on again (a redirect would send the visitor forward again). So it starts
      // as a page just loaded does: new events, and those queued for the next page.
      this.lastEventId = null;
      // Its token may have expired while the page sat in the cache: with getToken, a
      // token due for renewal is dropped now rather than refused (401) on reconnecting.
      var expiresAt = this._token && jwtExpiryMs(this._token);
      if (typeof this._options.getToken === "function" && expiresAt && expiresAt - this._serverNow() < 30000) {
        this._token = null;
      }
      this._open();
    }
  };

  Connection.prototype._teardown = function () {
    clearTimeout(this._timer);
    clearTimeout(this._renewTimer);
    this._timer = null;
    this._closePrevious();
    if (this._source) {
      this._source.close();
      this._source = null;
    }
  };

  Connection.prototype._setStatus = function (state, detail) {
    var changed = this.status !== state;
    this.status = state;
    if (changed && this._options.onStatus) {
      try {
        this._options.onStatus(state, detail || {});
      } catch (error) {
        reportError(error);
      }
    }
  };

  // One getToken call at a time: a renewal and an acknowledgement waiting for a token share it.
  Connection.prototype._freshToken = function () {
    var self = this;
    if (self._token) {
      return Promise.resolve(self._token);
    }
    if (!self._pendingToken) {
      self._pendingToken = Promise.resolve()
        .then(function () {
          return self._options.getToken();
        })
        .then(function (token) {
          // A token endpoint's text often ends in a newline (r.text()).
          token = typeof token === "string" ? token.trim() : "";
          if (!token) {
            throw new Error("getToken did not return a token");
          }
          self._token = token;
          return token;
        })
        .finally(function () {
          self._pendingToken = null;
        });
    }
    return self._pendingToken;
  };

  Connection.prototype._open = function () {
    var self = this;
    if (self._stopped) {
      return;
    }
    if (!self._previous) {
      self._setStatus(STATES.connecting);
    }
    self._freshToken().then(
      function (token) {
        if (self._stopped || self._source) {
          return;
        }
        var query = "clientId=" + encodeURIComponent(self.clientId) + self._topicsQuery + "&token=" + encodeURIComponent(token);
        if (self.lastEventId) {
          query += "&lastEventId=" + encodeURIComponent(self.lastEventId);
        }
        var source = new EventSource(self._base + "/sse/connect?" + query);
        // A stream is open once the server's `connected` event arrives, not when the
        // response starts: an instance that cannot reach Redis answers 200 with only a
        // retry hint, and counting that as open would reconnect forever without backoff.
        var connectedSinceError = false;
        self._source = source;
        source.onerror = function (event) {
          if (isServerEvent(event)) {
            return; // an event the server named `error`: EventSource hands those to onerror too
          }
          var wasConnected = connectedSinceError;
          connectedSinceError = false;
          if (self._previous && source === self._source) {
            // The renewal's new stream failed (e.g. the tab cap): keep the stream that
            // works; when its token expires, the usual 401 path gets a fresh one.
            source.close();
            self._keepPrevious();
            return;
          }
          self._onError(source, wasConnected);
        };
        source.addEventListener("connected", function (event) {
          connectedSinceError = true;
          self._remember(event);
          self._closePrevious();
          self._attempt = 0;
          self._setStatus(STATES.open);
          self._clockOffsetMs = serverClockOffsetMs(event);
          self._scheduleRenewal(source, token);
        });
        // After the events a stream opened with (missed, or queued for this page): its id
        // is the newest the stream has reached, which may be newer than theirs.
        source.addEventListener("replayed", function (event) {
          self._remember(event);
        });
        source.addEventListener("redirect", function (event) {
          self._dispatch(event, self._redirect);
        });
        source.addEventListener("notification", function (event) {
          self._dispatch(event, self._notification, true); // no call waits for a notification
        });
        source.addEventListener("custom", function (event) {
          self._dispatch(event, self._custom);
        });
        self._listenToNamedEvents(source);
      },
      function (error) {
        reportError(error);
        if (self._previous) {
          // Renewal failed: the current stream carries on; the 401 path takes over when it ends.
          self._keepPrevious();
        } else {
          self._retryLater("token_unavailable", 0);
        }
      }
    );
  };

  // The server ends a stream when its token expires. With getToken, a new token is fetched a
  // little before that and a second stream opened, resuming from the last event id; the old
  // stream closes once the new one is open, so no event falls into a gap (ids dedupe overlap).
  Connection.prototype._scheduleRenewal = function (source, token) {
    var self = this;
    clearTimeout(self._renewTimer);
    var expiresAt = jwtExpiryMs(token);
    if (typeof self._options.getToken !== "function" || !expiresAt) {
      return;
    }
    var lifetime = expiresAt - self._serverNow();
    if (lifetime <= 0) {
      return;
    }
    self._renewTimer = setTimeout(function () {
      if (self._stopped || self._source !== source) {
        return;
      }
      self._token = null;
      self._previous = source;
      self._source = null;
      self._open();
    }, lifetime - Math.min(30000, lifetime / 5));
  };

  // Now on the server's clock, as the last `connected` event told it. Token expiry is the
  // server's judgement: a browser clock running 30 s slow renewed after the server had
  // ended the stream, and the visitor dropped off at every expiry (review reproduction).
  Connection.prototype._serverNow = function () {
    return Date.now() + (this._clockOffsetMs || 0);
  };

  // After a failed renewal, the stream being replaced carries on, unless it ended
  // meanwhile (its token expired, and the browser's reconnect was refused): its error
  // was ignored while it was being replaced, so it is taken up now, or the widget would
  // say `open` for good with no stream behind it (review reproduction).
  Connection.prototype._keepPrevious = function () {
    var previous = this._previous;
    this._previous = null;
    this._source = previous;
    if (previous.readyState === EventSource.CLOSED) {
      this._onError(previous, false);
    }
  };

  Connection.prototype._closePrevious = function () {
    if (this._previous) {
      this._previous.close();
      this._previous = null;
    }
  };

  Connection.prototype._onError = function (source, wasConnected) {
    var self = this;
    if (source === self._previous) {
      return; // being replaced; the new stream resumes from the last event id
    }
    if (source !== self._source) {
      source.close(); // a stream that was replaced: never let the browser reconnect it
      return;
    }
    if (source.readyState !== EventSource.CLOSED && wasConnected) {
      self._setStatus(STATES.retrying, { reason: "network" }); // the browser reconnects by itself
      return;
    }
    // Refused, or ended before it ever said `connected`: ask why, and back off.
    source.close();
    self._source = null;
    self._diagnose().then(function (answer) {
      if (self._stopped || self._source) {
        return;
      }
      if (answer.status === 401 && typeof self._options.getToken === "function") {
        self._token = null;
        self._retryLater("token_refresh", 0);
      } else if (answer.status === 401 || answer.status === 400 || answer.status === 403) {
        self._stopped = true;
        self._setStatus(STATES.closed, { reason: answer.reason, status: answer.status });
      } else {
        self._retryLater(answer.reason, answer.retryAfterMs);
      }
    });
  };

  // EventSource never says why it gave up; /sse/check answers what a connect would.
  Connection.prototype._diagnose = function () {
    // The token rides in the query, as the stream's does: a request without custom headers
    // needs no CORS preflight, so a page on an origin the service does not allow reads
    // the service's 403 (and closes) instead of taking the refused preflight for an outage.
    var url = this._base + "/sse/check?clientId=" + encodeURIComponent(this.clientId) + this._topicsQuery;
    if (this._token) {
      url += "&token=" + encodeURIComponent(this._token);
    }
    return fetch(url, { cache: "no-store", credentials: "omit" }).then(
      function (response) {
        var retryAfter = parseInt(response.headers.get("Retry-After") || "0", 10);
        var reasons = { 200: "stream_ended", 400: "invalid_client_id", 401: "unauthorized", 403: "forbidden", 429: "too_many_connections" };
        var answer = {
          status: response.status,
          reason: reasons[response.status] || "unavailable",
          retryAfterMs: (retryAfter > 0 ? retryAfter : 0) * 1000,
        };
        if (response.status !== 400 && response.status !== 403) {
          return answer;
        }
        // Which part of the request was bad (INVALID_CLIENT_ID, INVALID_TOPIC, TOO_MANY_TOPICS),
        // or refused (FORBIDDEN_ORIGIN: the page's origin is not in CORS_ALLOWED_ORIGINS).
        return response.json().then(
          function (body) {
            var type = body && body.error && body.error.type;
            if (typeof type === "string" && type) {
              answer.reason = type.toLowerCase();
            }
            return answer;
          },
          function () {
            return answer;
          }
        );
      },
      function () {
        return { status: 0, reason: "unreachable", retryAfterMs: 0 };
      }
    );
  };

  Connection.prototype._retryLater = function (reason, atLeastMs) {
    var self = this;
    if (self._stopped) {
      return;
    }
    var delay = Math.max(atLeastMs || 0, backoffDelay(self._attempt, self._initialMs, self._maxMs));
    self._attempt += 1;
    self._setStatus(STATES.retrying, { reason: reason, attempt: self._attempt, delayMs: delay });
    clearTimeout(self._timer);
    self._timer = setTimeout(function () {
      self._timer = null;
      self._open();
    }, delay);
  };

  Connection.prototype._remember = function (event) {
    if (event.lastEventId) {
      this.lastEventId = event.lastEventId;
    }
  };

  // Replays after a reconnect may repeat events already acted on: recognise them by id.
  Connection.prototype._firstTime = function (id) {
    if (!id) {
      return true;
    }
    if (Object.prototype.hasOwnProperty.call(this._seenSet, id)) {
      return false;
    }
    this._seenSet[id] = true;
    this._seen.push(id);
    if (this._seen.length > REMEMBERED_IDS) {
      delete this._seenSet[this._seen.shift()];
    }
    return true;
  };

  // Acknowledgements answer waitForAck, which only redirects and custom events to one
  // client use: notifications, events that came through a topic (data.topic) or to
  // everyone (data.broadcast), and the site backend's named events are not acknowledged,
  // so an event sent to many tabs never causes a flood of acks.
  Connection.prototype._dispatch = function (event, handler, unacknowledged) {
    this._remember(event);
    var id = event.lastEventId;
    if (!this._firstTime(id)) {
      return;
    }
    var data;
    try {
      data = JSON.parse(event.data);
    } catch (invalid) {
      return;
    }
    var outcome;
    try {
      outcome = handler.call(this, data, id);
    } catch (error) {
      reportError(error);
      outcome = "failed";
    }
    if (id && !unacknowledged && !(data && ("topic" in Object(data) || "broadcast" in Object(data)))) {
      this._acknowledge(id, outcome, true);
    }
  };

  function isServerEvent(event) {
    return !!event && typeof event.data === "string";
  }

  // Handlers for event names of the site's own (options.events); the built-in ones keep theirs.
  var BUILT_IN_EVENTS = { connected: true, replayed: true, redirect: true, notification: true, custom: true };
  function isBuiltIn(name) {
    // Own properties only: an event named toString or constructor is the page's own.
    return Object.prototype.hasOwnProperty.call(BUILT_IN_EVENTS, name);
  }

  Connection.prototype._listenToNamedEvents = function (source) {
    var self = this;
    var handlers = self._options.events || {};
    Object.keys(handlers).forEach(function (name) {
      if (isBuiltIn(name) || typeof handlers[name] !== "function") {
        return;
      }
      source.addEventListener(name, function (event) {
        if (!isServerEvent(event)) {
          return; // the browser's own `error` (a dropped connection) has no data
        }
        self._dispatch(event, function (data, id) {
          return handlers[name](data, id) === false ? "declined" : "done";
        }, true);
      });
    });
  };

  Connection.prototype._redirect = function (data) {
    var target = httpUrlOrNull(data.url);
    if (!target) {
      return "refused";
    }
    if (this._options.onRedirect) {
      return this._options.onRedirect(target, data) === false ? "declined" : "done";
    }
    global.location.assign(target); // navigation starts after this task; the keepalive ack outlives the page
    return "done";
  };

  Connection.prototype._notification = function (data) {
    if (this._options.onNotification) {
      return this._options.onNotification(data) === false ? "declined" : "done";
    }
    showToast(data);
    return "done";
  };

  Connection.prototype._custom = function (data, id) {
    var detail = { action: data.action, payload: data.payload, timestamp: data.timestamp, eventId: id };
    global.document.dispatchEvent(new CustomEvent("channelpush:event", { detail: detail, bubbles: true }));
    if (this._options.onEvent) {
      return this._options.onEvent(detail) === false ? "declined" : "done";
    }
    return "done";
  };

  Connection.prototype._acknowledge = function (eventId, outcome, mayRefresh) {
    var self = this;
    if (!self._token) {
      // Between tokens (a renewal in flight): send once the new one arrives, rather than
      // let waitForAck report a timeout for an event the page did act on.
      if (typeof self._options.getToken === "function") {
        self._freshToken().then(function () {
          self._acknowledge(eventId, outcome, mayRefresh);
        }, noop);
      }
      return;
    }
    var body = JSON.stringify({ clientId: self.clientId, eventId: eventId, outcome: outcome, token: self._token });
    fetch(self._base + "/sse/ack", {
      method: "POST",
      headers: { "Content-Type": "text/plain;charset=UTF-8" },
      body: body,
      keepalive: true,
      credentials: "omit",
    }).then(function (response) {
      if (response.status === 401 && mayRefresh && typeof self._options.getToken === "function") {
        self._token = null;
        self._freshToken().then(function () {
          self._acknowledge(eventId, outcome, false);
        }, noop);
      }
    }, noop);
  };

  function reportError(error) {
    if (global.console && global.console.error) {
      global.console.error("[channel-push]", error);
    }
  }

  // ---- toast -------------------------------------------------------------------------

  var TOAST_REGION_ID = "channelpush-toasts";

  // The live region exists before any toast is put in it, so screen readers announce them.
  function prepareToastRegion() {
    var document = global.document;
    if (!document.body) {
      document.addEventListener("DOMContentLoaded", prepareToastRegion, { once: true });
      return null;
    }
    var region = document.getElementById(TOAST_REGION_ID);
    if (region) {
      return region;
    }
    region = document.createElement("div");
    region.id = TOAST_REGION_ID;
    region.setAttribute("role", "status");
    region.setAttribute("aria-live", "polite");
    setStyle(region, {
      position: "fixed",
      right: "16px",
      bottom: "16px",
      zIndex: "2147483000",
      display: "flex",
      flexDirection: "column",
      gap: "8px",
      width: "min(360px, calc(100vw - 32px))",
      pointerEvents: "none",
    });
    document.body.appendChild(region);
    return region;
  }

  function showToast(data) {
    var document = global.document;
    var region = prepareToastRegion();
    if (!region) {
      return;
    }
    var level = TOAST_COLORS[data.level] ? data.level : "info";
    var toast = document.createElement("div");
    toast.className = "channelpush-toast";
    toast.setAttribute("data-level", level);
    setStyle(toast, {
      position: "relative",
      boxSizing: "border-box",
      padding: "12px 40px 12px 14px",
      background: "#ffffff",
      color: "#1f2328",
      borderLeft: "4px solid " + TOAST_COLORS[level],
      borderRadius: "8px",
      boxShadow: "0 6px 24px rgba(0, 0, 0, 0.18)",
      font: "14px/1.5 " + FONT_STACK,
      wordBreak: "keep-all",
      overflowWrap: "anywhere",
      pointerEvents: "auto",
    });
    if (data.title) {
      var title = document.createElement("div");
      title.className = "channelpush-toast-title";
      title.textContent = String(data.title);
      setStyle(title, { fontWeight: "600", marginBottom: "2px" });
      toast.appendChild(title);
    }
    var message = document.createElement("div");
    message.className = "channelpush-toast-message";
    message.textContent = String(data.message == null ? "" : data.message);
    toast.appendChild(message);

    var dismiss = document.createElement("button");
    dismiss.type = "button";
    dismiss.className = "channelpush-toast-dismiss";
    dismiss.setAttribute("aria-label", "Dismiss notification");
    dismiss.textContent = "\u00d7";
    setStyle(dismiss, {
      position: "absolute",
      top: "6px",
      right: "6px",
      width: "28px",
      height: "28px",
      border: "0",
      borderRadius: "6px",
      background: "transparent",
      color: "#57606a",
      font: "20px/28px " + FONT_STACK,
      cursor: "pointer",
    });
    var timer = setTimeout(remove, level === "error" ? 15000 : 8000);
    function remove() {
      clearTimeout(timer);
      if (toast.parentNode) {
        toast.parentNode.removeChild(toast);
      }
    }
    dismiss.addEventListener("click", remove);
    toast.addEventListener("keydown", function (event) {
      if (event.key === "Escape") {
        remove();
      }
    });
    toast.appendChild(dismiss);

    while (region.children.length >= TOAST_LIMIT) {
      region.removeChild(region.firstChild);
    }
    region.appendChild(toast);
  }

  function setStyle(element, styles) {
    for (var name in styles) {
      if (Object.prototype.hasOwnProperty.call(styles, name)) {
        element.style[name] = styles[name];
      }
    }
  }

  var liveConnections = {};

  global.ChannelPush = {
    version: VERSION,
    connect: function (options) {
      var key = options ? withoutTrailingSlash(options.url || DEFAULT_BASE || "") + " " + options.clientId : "";
      var live = liveConnections[key];
      if (live && !live._stopped) {
        if (global.console && global.console.warn) {
          global.console.warn("[channel-push] " + options.clientId + " is already connected on this page; connect() returns that connection");
        }
        return live;
      }
      var connection = new Connection(options);
      liveConnections[key] = connection;
      return connection;
    },
  };

  // Loaded with async or defer, or not at all (the service unreachable), the script
  // runs after the page's own code, or never: a page that queued its setup in
  // window.channelPushQueue has it run now, and later pushes run at once.
  var queued = global.channelPushQueue;
  global.channelPushQueue = {
    push: function (setup) {
      try {
        setup(global.ChannelPush);
      } catch (error) {
        reportError(error);
      }
    },
  };
  if (queued && typeof queued.length === "number") {
    for (var index = 0; index < queued.length; index += 1) {
      global.channelPushQueue.push(queued[index]);
    }
  }
})(window);
