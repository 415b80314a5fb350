"""Everything a request handler needs, built once per app in the lifespan."""

from __future__ import annotations

from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import AsyncIterator

import httpx

from channel_app.lifecycle import Lifecycle
from channel_app.methods import MethodDeps
from config.settings import Settings
from security.redirects import HostAllowList, RedirectPolicy
from security.signature import SignatureVerifier, decode_signing_key
from security.tokens import ClientTokenVerifier, TokenVerifierConfig
from sse.acks import Acks, make_acks
from sse.broker import Broker, make_broker
from sse.service import SseService


@dataclass
class Services:
    settings: Settings
    lifecycle: Lifecycle
    broker: Broker
    sse: SseService
    signatures: SignatureVerifier
    tokens: ClientTokenVerifier
    method_deps: MethodDeps
    http: httpx.AsyncClient
    acks: Acks


def signature_verifier(settings: Settings) -> SignatureVerifier:
    keys = [settings.channel_signing_key, settings.channel_signing_key_previous]
    return SignatureVerifier(decode_signing_key(key.get_secret_value()) for key in keys if key is not None)


def redirect_policy(settings: Settings) -> RedirectPolicy:
    https_hosts, http_hosts = settings.redirect_allowed_hosts, settings.redirect_http_hosts
    if not settings.is_production and not https_hosts and not http_hosts:
        # Development default: the service's own demo pages on this machine.
        http_hosts = ["localhost", "127.0.0.1", f"localhost:{settings.port}", f"127.0.0.1:{settings.port}"]
    return RedirectPolicy(HostAllowList.parse(https_hosts, http_hosts))


def token_verifier(settings: Settings, http: httpx.AsyncClient) -> ClientTokenVerifier:
    secret = settings.client_jwt_secret.get_secret_value() if settings.client_jwt_secret else None
    return ClientTokenVerifier(TokenVerifierConfig(hs256_secret=secret), http=http)


@asynccontextmanager
async def running_services(settings: Settings, lifecycle: Lifecycle) -> AsyncIterator[Services]:
    broker = make_broker(settings)
    sse = SseService(broker)
    acks = make_acks(settings)
    async with httpx.AsyncClient(timeout=5.0) as http:
        await broker.start()
        try:
            yield Services(
                settings=settings,
                lifecycle=lifecycle,
                broker=broker,
                sse=sse,
                signatures=signature_verifier(settings),
                tokens=token_verifier(settings, http),
                method_deps=MethodDeps(
                    sse=sse,
                    redirects=redirect_policy(settings),
                    allow_broadcast=settings.allow_broadcast,
                    acks=acks,
                ),
                http=http,
                acks=acks,
            )
        finally:
            await acks.close()
            await broker.close()
