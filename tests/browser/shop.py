"""A customer's website for browser tests: a page embedding the widget, its own token endpoint,
and a landing page. It runs on its own port, so the widget works cross-origin as on a real site."""

from __future__ import annotations

import asyncio
import json

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse
from starlette.routing import Route

from channel_app.lifecycle import Lifecycle
from tests.support.apps import client_token

SHOP_PAGE = """<!doctype html>
<html lang="ko">
<head><meta charset="utf-8"><title>Test shop</title></head>
<body>
<h1>Test shop</h1>
<p>Status: <span id="status">-</span></p>
<script %(load)s src="%(push)s/widget.js"></script>
<script>
  window.log = { statuses: [], details: [], events: [], domEvents: [], named: [], tokensFetched: 0 };
  var named = {};
  %(named_events)s.forEach(function (name) {
    named[name] = function (data, eventId) { log.named.push({ name: name, data: data, eventId: eventId }); };
  });
  document.addEventListener("channelpush:event", function (event) { log.domEvents.push(event.detail); });
  function setUp(ChannelPush) { window.push = ChannelPush.connect({
    clientId: %(client_id)s,
    token: %(token)s,
    getToken: function () {
      log.tokensFetched += 1;
      var failing = %(token_fail_first)s && log.tokensFetched === 1;
      return fetch("/token?clientId=" + encodeURIComponent(%(client_id)s) + "&topics=" + %(topics_query)s + "&delay=" + %(token_delay)s).then(function (r) {
        if (failing) { throw new Error("the site's token endpoint failed"); }
        return r.text();
      });
    },
    topics: %(topics)s,
    events: named,
    retry: { initialMs: 200, maxMs: 1000 },
    onStatus: function (state, detail) {
      log.statuses.push(state);
      log.details.push(detail || null);
      document.getElementById("status").textContent = state;
    },
    onEvent: function (detail) { log.events.push(detail); }
  }); }
  %(start)s
</script>
%(second_embed)s
</body>
</html>
"""

SECOND_EMBED = """<script src="%(push)s/widget.js"></script>
<script>
  log.secondIsFirst = ChannelPush.connect({ clientId: %(client_id)s, getToken: function () { return Promise.reject(new Error("unused")); } }) === window.push;
</script>
"""

LANDING_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>Checkout</title></head><body><h1>Checkout</h1></body></html>
"""


def shop_app(push_url: str) -> Starlette:
    async def shop(request: Request) -> HTMLResponse:
        """`?clientId=`, and `?token=expired` to start with a stale token or `?token=short` with a
        10-second one (the widget renews it 2 s before expiry, slack enough for a loaded CI
        machine); otherwise the widget asks getToken for its first token. `?topics=a,b`
        subscribes to topics (the tokens allow them), `?events=chunk,complete` logs those
        named events in `log.named`, `?tokenDelay=3` makes the site's token endpoint take
        that many seconds (`?tokenFailFirst=1`: and the first getToken then fails), `?twice=1` embeds the widget and connects a second time, `?async=1`
        loads it async and queues the setup on window.channelPushQueue."""
        client_id = request.query_params.get("clientId", "visitor")
        topics = [topic for topic in request.query_params.get("topics", "").split(",") if topic]
        named_events = [name for name in request.query_params.get("events", "").split(",") if name]
        initial = request.query_params.get("token")
        token = {"expired": client_token(client_id, 60, now=0), "short": client_token(client_id, 10)}.get(initial or "")
        values = {
            "push": push_url, "client_id": json.dumps(client_id), "token": json.dumps(token),
            "topics": json.dumps(topics), "topics_query": json.dumps(",".join(topics)), "named_events": json.dumps(named_events),
            "token_delay": json.dumps(request.query_params.get("tokenDelay", "0")),
            "token_fail_first": json.dumps(bool(request.query_params.get("tokenFailFirst"))),
            "load": "async" if request.query_params.get("async") else "",
            "start": (
                "(window.channelPushQueue = window.channelPushQueue || []).push(setUp);"
                if request.query_params.get("async") else "setUp(ChannelPush);"
            ),
            "second_embed": SECOND_EMBED % {"push": push_url, "client_id": json.dumps(client_id)} if request.query_params.get("twice") else "",
        }
        return HTMLResponse(SHOP_PAGE % values)

    async def token(request: Request) -> PlainTextResponse:
        # A real site mints this on its server for the logged-in user.
        await asyncio.sleep(float(request.query_params.get("delay", "0")))
        topics = [topic for topic in request.query_params.get("topics", "").split(",") if topic]
        return PlainTextResponse(client_token(request.query_params["clientId"], topics=topics))

    async def landing(request: Request) -> HTMLResponse:
        return HTMLResponse(LANDING_PAGE)

    app = Starlette(routes=[Route("/shop", shop), Route("/token", token), Route("/checkout", landing)])
    app.state.lifecycle = Lifecycle()
    return app
