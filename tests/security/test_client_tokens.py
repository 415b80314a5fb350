"""Threat: forged or stolen client streams.

A browser opens `GET /sse/connect?clientId=...` and proves the client id with a
JWT. Whoever holds a stream for someone else's client id can steer that
visitor's browser, so these tests attack the verifier the way an attacker
would: unsigned tokens, algorithm confusion, foreign keys, stale or immature
tokens, missing or wrong claims, garbage and oversized input, and a JWKS
endpoint that is slow, failing, or sprayed with random key ids.

Nothing here reaches the network: JWKS URLs are mocked with respx.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
import uuid
from typing import Any

import httpx
import jwt
import pytest
import respx
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from security import jwks
from security.tokens import (
    ClientClaims,
    ClientTokenVerifier,
    TokenRejected,
    TokenVerifierConfig,
    mint_client_token,
    parse_duration,
)

pytestmark = pytest.mark.anyio

SECRET = "test-secret-long-enough-even-for-hs512-which-needs-64-bytes-0123"
OTHER_SECRET = "another-secret-long-enough-even-for-hs512-needing-64-bytes-01234"
JWKS_URL = "https://issuer.test/.well-known/jwks.json"
CLIENT_ID = "client-123"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


# --- keys and token helpers ------------------------------------------------


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def other_rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def public_pem(private_key: Any) -> str:
    return private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


def private_pem(private_key: Any) -> str:
    return private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    base: dict[str, Any] = {"sub": CLIENT_ID, "iat": now, "exp": now + 300}
    base.update(overrides)
    return {name: value for name, value in base.items() if value is not None}


def sign(key: Any, algorithm: str, headers: dict[str, Any] | None = None, **overrides: Any) -> str:
    return jwt.encode(claims(**overrides), key, algorithm=algorithm, headers=headers)


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def handmade_token(header: dict[str, Any], payload: dict[str, Any], signer=lambda _: b"") -> str:
    signing_input = f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(payload).encode())}"
    return f"{signing_input}.{b64url(signer(signing_input.encode()))}"


def hmac_signer(secret: bytes):
    return lambda message: hmac.new(secret, message, hashlib.sha256).digest()


def hs256_verifier(**config: Any) -> ClientTokenVerifier:
    return ClientTokenVerifier(TokenVerifierConfig(hs256_secret=SECRET, **config))


def pem_verifier(private_key: Any, **config: Any) -> ClientTokenVerifier:
    return ClientTokenVerifier(TokenVerifierConfig(public_key_pem=public_pem(private_key), **config))


def jwks_verifier(http: httpx.AsyncClient | None = None, **config: Any) -> ClientTokenVerifier:
    return ClientTokenVerifier(TokenVerifierConfig(jwks_url=JWKS_URL, **config), http=http)


async def rejection(verifier: ClientTokenVerifier, token: Any) -> TokenRejected:
    with pytest.raises(TokenRejected) as caught:
        await verifier.verify(token)
    return caught.value


async def keys_unavailable(verifier: ClientTokenVerifier, token: Any) -> jwks.JwksUnavailable:
    """No verdict on the token: its keys cannot be fetched (answered 503, not 401)."""
    with pytest.raises(jwks.JwksUnavailable) as caught:
        await verifier.verify(token)
    return caught.value


# --- accepted tokens (the baseline every attack is measured against) -------


async def test_valid_hs256_token_yields_its_client_claims() -> None:
    token = sign(SECRET, "HS256", topics=["orders", "chat"])

    result = await hs256_verifier().verify(token)

    assert isinstance(result, ClientClaims)
    assert result.subject == CLIENT_ID
    assert result.topics == ("orders", "chat")
    assert result.expires_at == float(jwt.decode(token, SECRET, algorithms=["HS256"])["exp"])
    assert result.raw["sub"] == CLIENT_ID
    with pytest.raises(TypeError):
        result.raw["sub"] = "someone-else"  # type: ignore[index]


async def test_valid_rs256_and_es256_tokens_verify_against_their_pem(rsa_key, ec_key) -> None:
    assert (await pem_verifier(rsa_key).verify(sign(rsa_key, "RS256"))).subject == CLIENT_ID
    assert (await pem_verifier(ec_key).verify(sign(ec_key, "ES256"))).subject == CLIENT_ID


async def test_minted_development_token_round_trips() -> None:
    token = mint_client_token(SECRET, CLIENT_ID, 600, topics=["a"], audience="channel-push", issuer="dev")

    result = await hs256_verifier(audience="channel-push", issuer="dev").verify(token)

    assert (result.subject, result.topics) == (CLIENT_ID, ("a",))
    assert result.expires_at - time.time() == pytest.approx(600, abs=2)


# --- unsigned tokens and algorithm confusion -------------------------------


@pytest.mark.parametrize("alg", ["none", "None", "NONE", ""])
async def test_unsigned_alg_none_token_is_rejected(alg, rsa_key) -> None:
    token = handmade_token({"alg": alg, "typ": "JWT"}, claims())

    for verifier in (hs256_verifier(), pem_verifier(rsa_key)):
        assert (await rejection(verifier, token)).reason == "disallowed_algorithm"


async def test_token_without_alg_header_is_rejected() -> None:
    token = handmade_token({"typ": "JWT"}, claims(), hmac_signer(SECRET.encode()))

    assert (await rejection(hs256_verifier(), token)).reason == "disallowed_algorithm"


async def test_hs256_token_signed_with_rsa_public_key_is_rejected(rsa_key) -> None:
    # Classic confusion: the attacker knows the public PEM and uses it as an HMAC secret.
    forged = handmade_token({"alg": "HS256"}, claims(), hmac_signer(public_pem(rsa_key).encode()))

    assert (await rejection(pem_verifier(rsa_key), forged)).reason == "disallowed_algorithm"
    explicit_rs256 = pem_verifier(rsa_key, algorithms=("RS256",))
    assert (await rejection(explicit_rs256, forged)).reason == "disallowed_algorithm"


async def test_hs256_token_signed_with_jwks_key_material_is_rejected(rsa_key) -> None:
    jwk = json.dumps(rsa_jwk(rsa_key, "k1")).encode()
    forged = handmade_token({"alg": "HS256", "kid": "k1"}, claims(), hmac_signer(jwk))

    with respx.mock(assert_all_called=False) as router:
        route = router.get(JWKS_URL).mock(return_value=jwks_response(rsa_jwk(rsa_key, "k1")))
        assert (await rejection(jwks_verifier(), forged)).reason == "disallowed_algorithm"
    assert route.call_count == 0


async def test_algorithm_not_pinned_in_config_is_rejected_even_with_the_right_key() -> None:
    token = sign(SECRET, "HS512")

    assert (await rejection(hs256_verifier(), token)).reason == "disallowed_algorithm"


async def test_rs256_token_is_rejected_by_a_verifier_holding_an_ec_key(rsa_key, ec_key) -> None:
    assert (await rejection(pem_verifier(ec_key), sign(rsa_key, "RS256"))).reason == "disallowed_algorithm"


# --- foreign keys -----------------------------------------------------------


async def test_token_signed_with_another_secret_is_rejected() -> None:
    token = sign(OTHER_SECRET, "HS256")

    assert (await rejection(hs256_verifier(), token)).reason == "invalid_signature"


async def test_token_signed_with_another_rsa_key_is_rejected(rsa_key, other_rsa_key) -> None:
    token = sign(other_rsa_key, "RS256")

    assert (await rejection(pem_verifier(rsa_key), token)).reason == "invalid_signature"


async def test_token_with_tampered_subject_is_rejected() -> None:
    header, _, signature = sign(SECRET, "HS256").split(".")
    tampered_payload = b64url(json.dumps(claims(sub="victim-client")).encode())

    token = f"{header}.{tampered_payload}.{signature}"

    assert (await rejection(hs256_verifier(), token)).reason == "invalid_signature"


# --- lifetime ---------------------------------------------------------------


async def test_expired_token_is_rejected() -> None:
    token = sign(SECRET, "HS256", iat=int(time.time()) - 3600, exp=int(time.time()) - 600)

    assert (await rejection(hs256_verifier(), token)).reason == "expired"


async def test_token_expired_beyond_leeway_is_rejected_but_within_leeway_accepted() -> None:
    now = int(time.time())
    verifier = hs256_verifier(leeway_seconds=30)

    assert (await verifier.verify(sign(SECRET, "HS256", exp=now - 10))).subject == CLIENT_ID
    assert (await rejection(verifier, sign(SECRET, "HS256", exp=now - 60))).reason == "expired"


async def test_token_without_exp_never_expiring_is_rejected() -> None:
    token = sign(SECRET, "HS256", exp=None)

    assert (await rejection(hs256_verifier(), token)).reason == "missing_exp"


@pytest.mark.parametrize("claim", ["exp", "nbf", "iat"])
async def test_time_claim_smuggled_as_string_is_rejected(claim) -> None:
    token = sign(SECRET, "HS256", **{claim: str(int(time.time()))})

    assert (await rejection(hs256_verifier(), token)).reason == "malformed"


async def test_signed_expiry_beyond_a_doubles_range_is_refused_not_a_crash(rsa_key) -> None:
    token = sign(rsa_key, "RS256", exp=10**400)  # PyJWT reads it; float() of it would raise

    assert (await rejection(pem_verifier(rsa_key), token)).reason == "malformed"


@pytest.mark.parametrize("claim", ["nbf", "iat"])
async def test_not_yet_valid_token_is_rejected(claim) -> None:
    token = sign(SECRET, "HS256", **{claim: int(time.time()) + 600})

    assert (await rejection(hs256_verifier(), token)).reason == "not_yet_valid"


async def test_nbf_slightly_in_the_future_is_tolerated_by_leeway() -> None:
    token = sign(SECRET, "HS256", nbf=int(time.time()) + 10)

    assert (await hs256_verifier(leeway_seconds=30).verify(token)).subject == CLIENT_ID


# --- subject ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("subject", "reason"),
    [(None, "missing_sub"), ("", "missing_sub"), ("   ", "missing_sub"),
     (123, "invalid_sub"), (["client-123"], "invalid_sub"), ("x" * 257, "invalid_sub")],
)
async def test_token_without_a_usable_sub_is_rejected(subject, reason) -> None:
    payload = claims()
    payload.pop("sub")
    if subject is not None:
        payload["sub"] = subject
    token = jwt.encode(payload, SECRET, algorithm="HS256")

    assert (await rejection(hs256_verifier(), token)).reason == reason


async def test_subject_of_maximum_length_is_accepted() -> None:
    token = sign(SECRET, "HS256", sub="x" * 256)

    assert (await hs256_verifier().verify(token)).subject == "x" * 256


async def test_malformed_topics_claim_is_rejected() -> None:
    token = sign(SECRET, "HS256", topics="orders")

    assert (await rejection(hs256_verifier(), token)).reason == "malformed"


# --- audience and issuer ----------------------------------------------------


@pytest.mark.parametrize("audience", ["other-service", ["other-service", "billing"], None])
async def test_token_for_another_audience_is_rejected(audience) -> None:
    token = sign(SECRET, "HS256", aud=audience)

    assert (await rejection(hs256_verifier(audience="channel-push"), token)).reason == "bad_audience"


async def test_token_listing_our_audience_among_others_is_accepted() -> None:
    token = sign(SECRET, "HS256", aud=["billing", "channel-push"])

    assert (await hs256_verifier(audience="channel-push").verify(token)).subject == CLIENT_ID


async def test_audience_in_token_is_ignored_when_no_audience_is_configured() -> None:
    token = sign(SECRET, "HS256", aud="some-audience")

    assert (await hs256_verifier().verify(token)).subject == CLIENT_ID


@pytest.mark.parametrize("issuer", ["https://evil.test", None])
async def test_token_from_another_issuer_is_rejected(issuer) -> None:
    token = sign(SECRET, "HS256", iss=issuer)

    assert (await rejection(hs256_verifier(issuer="https://issuer.test"), token)).reason == "bad_issuer"


# --- garbage and oversized input --------------------------------------------


@pytest.mark.parametrize(
    "garbage",
    ["", "abc", "a.b.c", "..", "....", "Bearer x.y.z", "ey.ey.ey", "é.é.é",
     b64url(b"[1,2]") + "." + b64url(b"{}") + ".",
     b64url(b'{"alg":"HS256"}') + "." + b64url(b"not json") + ".sig",
     b64url(b'{"alg":"HS256"}') + "." + b64url(b"[]") + "." + b64url(b"x"),
     None, 42, b"a.b.c"],
)
async def test_garbage_string_is_rejected_as_malformed(garbage) -> None:
    assert (await rejection(hs256_verifier(), garbage)).reason in {"malformed", "invalid_signature"}


async def test_over_long_token_is_rejected_before_decoding(monkeypatch) -> None:
    def must_not_decode(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("over-long token reached the JWT decoder")

    verifier = hs256_verifier()
    monkeypatch.setattr(jwt, "get_unverified_header", must_not_decode)
    monkeypatch.setattr(jwt, "decode", must_not_decode)
    monkeypatch.setattr(verifier._decoder, "decode", must_not_decode)  # the verifier's own decoders
    monkeypatch.setattr(verifier._hmac, "verified_payload", must_not_decode)

    assert (await rejection(verifier, "a" * (8 * 1024 + 1))).reason == "too_long"


async def test_validly_signed_but_bloated_token_is_rejected() -> None:
    token = sign(SECRET, "HS256", padding="x" * 9000)

    assert (await rejection(hs256_verifier(), token)).reason == "too_long"


async def test_rejection_never_echoes_the_token(rsa_key) -> None:
    expired = sign(SECRET, "HS256", exp=int(time.time()) - 600)
    foreign = sign(OTHER_SECRET, "HS256")
    confused = handmade_token({"alg": "HS256"}, claims(), hmac_signer(public_pem(rsa_key).encode()))
    garbage = "not-a-jwt-" + uuid.uuid4().hex

    for verifier, token in [(hs256_verifier(), expired), (hs256_verifier(), foreign),
                            (pem_verifier(rsa_key), confused), (hs256_verifier(), garbage)]:
        error = await rejection(verifier, token)
        rendered = " ".join([str(error), repr(error), error.message, *map(str, error.args)])
        for fragment in [token, *token.split(".")]:
            assert fragment not in rendered
        assert error.__cause__ is None
        assert error.__context__ is None or error.__suppress_context__


# --- configuration mistakes that would open a hole ---------------------------


@pytest.mark.parametrize(
    "config",
    [{}, {"hs256_secret": SECRET, "jwks_url": JWKS_URL},
     {"hs256_secret": SECRET, "public_key_pem": "pem", "jwks_url": JWKS_URL}],
)
def test_config_without_exactly_one_key_source_is_refused(config) -> None:
    with pytest.raises(ValueError, match="exactly one of hs256_secret, public_key_pem, jwks_url"):
        TokenVerifierConfig(**config)


def test_config_mixing_hmac_with_public_key_algorithms_is_refused(rsa_key) -> None:
    with pytest.raises(ValueError, match="HS256"):
        TokenVerifierConfig(public_key_pem=public_pem(rsa_key), algorithms=("RS256", "HS256"))
    with pytest.raises(ValueError, match="HS256"):
        TokenVerifierConfig(jwks_url=JWKS_URL, algorithms=("HS256",))
    with pytest.raises(ValueError, match="RS256"):
        TokenVerifierConfig(hs256_secret=SECRET, algorithms=("RS256",))


def test_config_allowing_alg_none_is_refused() -> None:
    with pytest.raises(ValueError, match="none"):
        TokenVerifierConfig(hs256_secret=SECRET, algorithms=("HS256", "none"))


def test_brute_forceable_short_secret_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 32 bytes"):
        TokenVerifierConfig(hs256_secret="short")
    with pytest.raises(ValueError, match="at least 32 bytes"):
        mint_client_token("short", CLIENT_ID, 60)


def test_config_repr_does_not_leak_the_hmac_secret() -> None:
    assert SECRET not in repr(TokenVerifierConfig(hs256_secret=SECRET))


def test_jwks_over_plain_http_is_refused() -> None:
    with pytest.raises(ValueError, match="https"):
        TokenVerifierConfig(jwks_url="http://issuer.test/jwks.json")


@pytest.mark.parametrize("field", ["hs256_secret", "public_key_pem", "jwks_url", "audience", "issuer"])
def test_empty_string_setting_is_refused_rather_than_silently_ignored(field) -> None:
    with pytest.raises(ValueError, match=f"{field} is empty"):
        TokenVerifierConfig(**{"hs256_secret": SECRET, field: ""})


@pytest.mark.parametrize("leeway", [-1, 301, float("inf")])
def test_leeway_that_would_accept_long_expired_tokens_is_refused(leeway) -> None:
    with pytest.raises(ValueError, match="leeway_seconds"):
        TokenVerifierConfig(hs256_secret=SECRET, leeway_seconds=leeway)


def test_unusable_public_key_pem_is_refused(rsa_key, ec_key) -> None:
    weak_rsa = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    with pytest.raises(ValueError, match="not a PEM-encoded public key"):
        ClientTokenVerifier(TokenVerifierConfig(public_key_pem="-----BEGIN nonsense"))
    with pytest.raises(ValueError, match="not a PEM-encoded public key"):
        ClientTokenVerifier(TokenVerifierConfig(public_key_pem=private_pem(rsa_key)))
    with pytest.raises(ValueError, match="2048"):
        ClientTokenVerifier(TokenVerifierConfig(public_key_pem=public_pem(weak_rsa)))
    with pytest.raises(ValueError, match="cannot verify"):
        ClientTokenVerifier(TokenVerifierConfig(public_key_pem=public_pem(ec_key), algorithms=("RS256",)))


# --- JWKS ---------------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock(monkeypatch) -> FakeClock:
    fake = FakeClock()
    monkeypatch.setattr(jwks, "monotonic", fake)
    return fake


@pytest.fixture
def router():
    with respx.mock(assert_all_mocked=True, assert_all_called=False) as mock_router:
        yield mock_router


def rsa_jwk(private_key: Any, kid: str, **extra: Any) -> dict[str, Any]:
    return {**RSAAlgorithm.to_jwk(private_key.public_key(), as_dict=True), "kid": kid, "use": "sig", **extra}


def ec_jwk(private_key: Any, kid: str) -> dict[str, Any]:
    return {**ECAlgorithm.to_jwk(private_key.public_key(), as_dict=True), "kid": kid}


def jwks_response(*keys: dict[str, Any]) -> httpx.Response:
    return httpx.Response(200, json={"keys": list(keys)})


def signed_with_kid(private_key: Any, kid: str, algorithm: str = "RS256", **overrides: Any) -> str:
    return sign(private_key, algorithm, headers={"kid": kid}, **overrides)


async def test_jwks_key_set_is_cached_between_verifies(router, clock, rsa_key, ec_key) -> None:
    route = router.get(JWKS_URL).mock(return_value=jwks_response(rsa_jwk(rsa_key, "rsa-1"), ec_jwk(ec_key, "ec-1")))
    async with httpx.AsyncClient() as http:
        verifier = jwks_verifier(http)

        assert (await verifier.verify(signed_with_kid(rsa_key, "rsa-1"))).subject == CLIENT_ID
        clock.advance(60)
        assert (await verifier.verify(signed_with_kid(ec_key, "ec-1", "ES256"))).subject == CLIENT_ID

    assert route.call_count == 1


async def test_jwks_is_refetched_once_the_cache_ttl_expires(router, clock, rsa_key) -> None:
    route = router.get(JWKS_URL).mock(return_value=jwks_response(rsa_jwk(rsa_key, "rsa-1")))
    verifier = jwks_verifier()

    await verifier.verify(signed_with_kid(rsa_key, "rsa-1"))
    clock.advance(jwks.CACHE_TTL_SECONDS + 1)
    await verifier.verify(signed_with_kid(rsa_key, "rsa-1"))

    assert route.call_count == 2


async def test_rotated_in_key_with_unknown_kid_triggers_a_refresh(router, clock, rsa_key, other_rsa_key) -> None:
    route = router.get(JWKS_URL).mock(side_effect=[
        jwks_response(rsa_jwk(rsa_key, "old")),
        jwks_response(rsa_jwk(rsa_key, "old"), rsa_jwk(other_rsa_key, "new")),
    ])
    verifier = jwks_verifier()
    await verifier.verify(signed_with_kid(rsa_key, "old"))
    clock.advance(jwks.MIN_REFRESH_INTERVAL_SECONDS + 1)

    assert (await verifier.verify(signed_with_kid(other_rsa_key, "new"))).subject == CLIENT_ID
    assert route.call_count == 2


async def test_random_kid_spray_cannot_hammer_the_jwks_url(router, clock, rsa_key) -> None:
    route = router.get(JWKS_URL).mock(return_value=jwks_response(rsa_jwk(rsa_key, "rsa-1")))
    verifier = jwks_verifier()
    await verifier.verify(signed_with_kid(rsa_key, "rsa-1"))
    clock.advance(jwks.MIN_REFRESH_INTERVAL_SECONDS + 1)

    for _ in range(25):
        token = signed_with_kid(rsa_key, uuid.uuid4().hex)
        assert (await rejection(verifier, token)).reason == "unknown_key"
        clock.advance(1)
    assert route.call_count == 2  # one refresh for the whole burst

    clock.advance(jwks.MIN_REFRESH_INTERVAL_SECONDS)
    await rejection(verifier, signed_with_kid(rsa_key, uuid.uuid4().hex))
    assert route.call_count == 3
    assert (await verifier.verify(signed_with_kid(rsa_key, "rsa-1"))).subject == CLIENT_ID


async def test_a_new_kid_while_the_jwks_cannot_be_fetched_is_unavailable_not_refused(router, clock, rsa_key, other_rsa_key) -> None:
    """Review reproduction: a key added while the JWKS answered 500 got 401 "unknown key",
    so widgets threw good tokens away and asked the site for new ones over and over;
    the old keys kept serving from the stale set."""
    route = router.get(JWKS_URL).mock(side_effect=[
        jwks_response(rsa_jwk(rsa_key, "old")),
        httpx.Response(500),
        jwks_response(rsa_jwk(rsa_key, "old")),
    ])
    verifier = jwks_verifier()
    await verifier.verify(signed_with_kid(rsa_key, "old"))
    clock.advance(jwks.MIN_REFRESH_INTERVAL_SECONDS + 1)

    error = await keys_unavailable(verifier, signed_with_kid(other_rsa_key, "new"))
    assert 1 <= error.retry_after_seconds <= jwks.MIN_REFRESH_INTERVAL_SECONDS
    assert (await verifier.verify(signed_with_kid(rsa_key, "old"))).subject == CLIENT_ID  # the stale set serves
    clock.advance(jwks.MIN_REFRESH_INTERVAL_SECONDS + 1)
    assert (await rejection(verifier, signed_with_kid(other_rsa_key, "new"))).reason == "unknown_key"  # fetched: truly unknown
    assert route.call_count == 3


async def test_a_jwks_with_no_key_for_the_configured_algorithms_says_so_in_the_log(router, rsa_key, caplog) -> None:
    """Review finding: keys published as RS256 with only RS512 configured were all skipped,
    and every token was refused as signed with an unknown key without a word in the log."""
    router.get(JWKS_URL).mock(return_value=jwks_response(rsa_jwk(rsa_key, "k1", alg="RS256")))
    verifier = jwks_verifier(algorithms=("RS512",))
    with caplog.at_level("WARNING", logger="security.jwks"):
        assert (await rejection(verifier, signed_with_kid(rsa_key, "k1", "RS512"))).reason == "unknown_key"
    [warning] = [record.getMessage() for record in caplog.records if record.name == "security.jwks"]
    assert "no key usable here" in warning and "RS512" in warning


async def test_concurrent_verifies_share_a_single_jwks_fetch(router, rsa_key) -> None:
    async def slow_jwks(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(0.05)
        return jwks_response(rsa_jwk(rsa_key, "rsa-1"))

    route = router.get(JWKS_URL).mock(side_effect=slow_jwks)
    verifier = jwks_verifier()
    tokens = [signed_with_kid(rsa_key, "rsa-1", sub=f"client-{n}") for n in range(20)]

    results = await asyncio.gather(*(verifier.verify(token) for token in tokens))

    assert [result.subject for result in results] == [f"client-{n}" for n in range(20)]
    assert route.call_count == 1


async def test_concurrent_unknown_kids_share_a_single_refresh(router, clock, rsa_key) -> None:
    async def slow_jwks(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(0.02)
        return jwks_response(rsa_jwk(rsa_key, "rsa-1"))

    route = router.get(JWKS_URL).mock(side_effect=slow_jwks)
    verifier = jwks_verifier()
    await verifier.verify(signed_with_kid(rsa_key, "rsa-1"))
    clock.advance(jwks.MIN_REFRESH_INTERVAL_SECONDS + 1)

    tokens = [signed_with_kid(rsa_key, uuid.uuid4().hex) for _ in range(20)]
    outcomes = await asyncio.gather(*(verifier.verify(token) for token in tokens), return_exceptions=True)

    assert {getattr(outcome, "reason", None) for outcome in outcomes} == {"unknown_key"}
    assert route.call_count == 2


async def test_visitor_disconnecting_mid_fetch_does_not_lock_out_the_next_one(router, rsa_key) -> None:
    fetch_started = asyncio.Event()
    fetches: list[httpx.Request] = []

    async def slow_jwks(request: httpx.Request) -> httpx.Response:
        fetches.append(request)
        fetch_started.set()
        await asyncio.sleep(0.05)
        return jwks_response(rsa_jwk(rsa_key, "rsa-1"))

    router.get(JWKS_URL).mock(side_effect=slow_jwks)
    verifier = jwks_verifier()
    first = asyncio.create_task(verifier.verify(signed_with_kid(rsa_key, "rsa-1")))
    await fetch_started.wait()
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first

    assert (await verifier.verify(signed_with_kid(rsa_key, "rsa-1"))).subject == CLIENT_ID
    assert len(fetches) == 2


@pytest.mark.parametrize(
    "failure",
    [httpx.Response(500), httpx.Response(404), httpx.Response(302, headers={"Location": "https://evil.test/jwks"}),
     httpx.Response(200, content=b"<html>not json</html>"), httpx.Response(200, json={"no": "keys"}),
     httpx.Response(200, json=["not", "an", "object"]),
     httpx.Response(200, content=b'{"keys": [' + b"{}," * 200_000 + b"{}]}"),
     httpx.ConnectError("refused"), httpx.ReadTimeout("slow"), RuntimeError("unexpected")],
    ids=["500", "404", "redirect", "html", "no-keys", "array", "oversized", "connect", "timeout", "unexpected"],
)
async def test_jwks_fetch_failure_rejects_the_token_cleanly(router, rsa_key, failure) -> None:
    router.get(JWKS_URL).mock(side_effect=[failure])

    error = await keys_unavailable(jwks_verifier(), signed_with_kid(rsa_key, "rsa-1"))

    assert 1 <= error.retry_after_seconds <= jwks.MIN_REFRESH_INTERVAL_SECONDS


@pytest.mark.parametrize(
    "malformed",
    [{"kid": "x", "kty": "RSA", "alg": ["RS256"]}, {"kid": "x", "kty": ["RSA"]}, {"kid": "x", "kty": "RSA", "n": 5, "e": []},
     {"kid": "x", "kty": "EC", "crv": {"P-256": 1}, "x": "a", "y": "b"}],
    ids=["alg-list", "kty-list", "numbers", "crv-object"],
)
async def test_a_malformed_jwks_entry_is_skipped_and_the_good_keys_serve(router, clock, rsa_key, malformed) -> None:
    """Review reproduction: an entry whose `alg` or `kty` was a list raised TypeError
    out of the parser: every connect was a 500 and, the attempt never stamped, each
    request fetched the JWKS again."""
    route = router.get(JWKS_URL).mock(return_value=jwks_response(rsa_jwk(rsa_key, "rsa-1"), malformed))
    verifier = jwks_verifier()

    assert (await verifier.verify(signed_with_kid(rsa_key, "rsa-1"))).subject == CLIENT_ID
    for _ in range(3):
        assert (await rejection(verifier, signed_with_kid(rsa_key, uuid.uuid4().hex))).reason == "unknown_key"
    assert route.call_count == 1


async def test_a_key_set_that_cannot_be_read_at_all_is_fetched_at_most_once_per_interval(router, monkeypatch, rsa_key) -> None:
    def unreadable(body, allowed):
        raise TypeError("a parser bug or a document no one foresaw")

    monkeypatch.setattr(jwks, "parse_key_set", unreadable)
    route = router.get(JWKS_URL).mock(return_value=jwks_response(rsa_jwk(rsa_key, "rsa-1")))
    verifier = jwks_verifier()
    for _ in range(3):
        await keys_unavailable(verifier, signed_with_kid(rsa_key, "rsa-1"))
    assert route.call_count == 1


async def test_hanging_jwks_endpoint_is_cut_off_by_the_fetch_timeout(router, monkeypatch, rsa_key) -> None:
    async def hanging(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(10)
        return jwks_response(rsa_jwk(rsa_key, "rsa-1"))

    monkeypatch.setattr(jwks, "FETCH_TIMEOUT_SECONDS", 0.05)
    router.get(JWKS_URL).mock(side_effect=hanging)

    await keys_unavailable(jwks_verifier(), signed_with_kid(rsa_key, "rsa-1"))


async def test_failing_jwks_url_is_not_hammered_either(router, clock, rsa_key) -> None:
    route = router.get(JWKS_URL).mock(return_value=httpx.Response(503))
    verifier = jwks_verifier()

    for _ in range(10):
        await keys_unavailable(verifier, signed_with_kid(rsa_key, "rsa-1"))

    assert route.call_count == 1


async def test_jwks_outage_serves_last_good_keys_only_for_a_bounded_time(router, clock, rsa_key) -> None:
    router.get(JWKS_URL).mock(side_effect=[jwks_response(rsa_jwk(rsa_key, "rsa-1"))] + [httpx.Response(503)] * 5)
    verifier = jwks_verifier()
    token_kid = "rsa-1"
    await verifier.verify(signed_with_kid(rsa_key, token_kid))

    clock.advance(jwks.CACHE_TTL_SECONDS + 1)
    assert (await verifier.verify(signed_with_kid(rsa_key, token_kid))).subject == CLIENT_ID

    clock.advance(jwks.MAX_STALE_SECONDS)
    await keys_unavailable(verifier, signed_with_kid(rsa_key, token_kid))


async def test_token_without_kid_is_rejected_without_fetching_jwks(router, rsa_key) -> None:
    route = router.get(JWKS_URL).mock(return_value=jwks_response(rsa_jwk(rsa_key, "rsa-1")))

    assert (await rejection(jwks_verifier(), sign(rsa_key, "RS256"))).reason == "missing_kid"
    assert route.call_count == 0


async def test_token_embedding_its_own_jwk_header_is_not_trusted(router, rsa_key, other_rsa_key) -> None:
    router.get(JWKS_URL).mock(return_value=jwks_response(rsa_jwk(rsa_key, "rsa-1")))
    attacker_jwk = rsa_jwk(other_rsa_key, "rsa-1")
    token = sign(other_rsa_key, "RS256", headers={"kid": "rsa-1", "jwk": attacker_jwk, "jku": "https://evil.test/jwks"})

    assert (await rejection(jwks_verifier(), token)).reason == "invalid_signature"


async def test_token_cannot_switch_the_algorithm_bound_to_a_jwks_key(router, rsa_key) -> None:
    router.get(JWKS_URL).mock(return_value=jwks_response(rsa_jwk(rsa_key, "rsa-1", alg="RS256")))
    token = sign(rsa_key, "PS256", headers={"kid": "rsa-1"})

    verifier = jwks_verifier(algorithms=("RS256", "PS256"))

    assert (await rejection(verifier, token)).reason == "disallowed_algorithm"


@pytest.mark.parametrize("algorithms", [("RS512",), ("RS256", "PS256")])
async def test_an_rsa_key_without_alg_serves_each_configured_rsa_algorithm(router, rsa_key, algorithms) -> None:
    """Review reproduction: `alg` is optional in a JWK (Azure AD's keys have none);
    PyJWT then assumed RS256, so with CLIENT_JWT_ALGORITHMS=RS512 every token was
    "signed with an unknown key"."""
    jwk = {name: value for name, value in rsa_jwk(rsa_key, "rsa-1").items() if name != "alg"}
    router.get(JWKS_URL).mock(return_value=jwks_response(jwk))
    verifier = jwks_verifier(algorithms=algorithms)

    for algorithm in algorithms:
        assert (await verifier.verify(signed_with_kid(rsa_key, "rsa-1", algorithm))).subject == CLIENT_ID
    assert (await rejection(verifier, signed_with_kid(rsa_key, "rsa-1", "RS384"))).reason == "disallowed_algorithm"


async def test_symmetric_and_private_keys_in_a_jwks_are_ignored(router, rsa_key) -> None:
    oct_key = {"kty": "oct", "kid": "shared", "k": b64url(SECRET.encode())}
    leaked_private = {**json.loads(RSAAlgorithm.to_jwk(rsa_key)), "kid": "private"}
    router.get(JWKS_URL).mock(return_value=jwks_response(oct_key, leaked_private))
    verifier = jwks_verifier()

    assert (await rejection(verifier, signed_with_kid(rsa_key, "private"))).reason == "unknown_key"
    assert (await rejection(verifier, signed_with_kid(rsa_key, "shared"))).reason == "unknown_key"


async def test_jwks_key_meant_for_encryption_is_not_used_for_signatures(router, rsa_key) -> None:
    router.get(JWKS_URL).mock(return_value=jwks_response(rsa_jwk(rsa_key, "enc-1", use="enc")))

    assert (await rejection(jwks_verifier(), signed_with_kid(rsa_key, "enc-1"))).reason == "unknown_key"


async def test_expired_token_is_rejected_even_with_a_valid_jwks_key(router, rsa_key) -> None:
    router.get(JWKS_URL).mock(return_value=jwks_response(rsa_jwk(rsa_key, "rsa-1")))
    token = signed_with_kid(rsa_key, "rsa-1", exp=int(time.time()) - 600)

    assert (await rejection(jwks_verifier(), token)).reason == "expired"


# --- helpers ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("10m", 600), ("30s", 30), ("2h", 7200), ("1d", 86400), ("45", 45), ("1.5h", 5400), (" 5m ", 300)],
)
def test_parse_duration_reads_configured_ttls(text, seconds) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("junk", ["", "m", "10x", "10 m", "-5m", "1e3", "inf", "nan", "10M", "5m5s", "٣m", None])
def test_parse_duration_refuses_junk(junk) -> None:
    with pytest.raises(ValueError):
        parse_duration(junk)


@pytest.mark.parametrize(
    "arguments",
    [{"client_id": ""}, {"client_id": "x" * 257}, {"ttl_seconds": 0}, {"ttl_seconds": -5},
     {"ttl_seconds": float("nan")}, {"topics": "orders"}],
)
def test_mint_refuses_tokens_that_verification_would_reject(arguments) -> None:
    with pytest.raises(ValueError):
        mint_client_token(SECRET, **{"client_id": CLIENT_ID, "ttl_seconds": 60, **arguments})
