"""The hand-written HMAC token path must reach PyJWT's verdict on every token.

ClientTokenVerifier checks HS256/384/512 tokens itself (security/hmac_jws.py,
security/token_claims.py) because PyJWT's decode was a quarter of a stream
connect. These tests run the same tokens through PyJWT, with the options
ClientTokenVerifier gave it before, and compare: the same claims when
accepted, the same reason when refused. Where this path is deliberately
stricter (padding, non-UTF-8 JSON, numbers beyond a double's range) it must refuse.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import random
import time
from typing import Any

import jwt
import pytest

from security import tokens
from security.tokens import ClientTokenVerifier, TokenRejected, TokenVerifierConfig

SECRET = "differential-secret-long-enough-even-for-hs512-needing-64-bytes-"
AUDIENCE = "channel-push"
ISSUER = "https://issuer.test"
HASHES = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}
CONFIGS = [
    {},
    {"audience": AUDIENCE},
    {"issuer": ISSUER},
    {"algorithms": ("HS256", "HS512"), "audience": AUDIENCE, "issuer": ISSUER, "leeway_seconds": 0},
]


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def encoded_json(value: Any) -> bytes:
    return value if isinstance(value, bytes) else json.dumps(value).encode()


def token(header: Any, payload: Any, *, algorithm: str = "HS256", secret: str = SECRET) -> str:
    signing_input = f"{b64url(encoded_json(header))}.{b64url(encoded_json(payload))}"
    signature = hmac.new(secret.encode(), signing_input.encode(), HASHES[algorithm]).digest()
    return f"{signing_input}.{b64url(signature)}"


def claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    base = {"sub": "client-1", "iat": now, "exp": now + 300, "aud": AUDIENCE, "iss": ISSUER}
    base.update(overrides)
    return {name: value for name, value in base.items() if value is not ...}


NOW = int(time.time())
HEADERS = [
    {"alg": "HS256", "typ": "JWT"}, {"alg": "HS512"}, {"alg": "HS384"}, {"alg": "none"}, {"alg": "RS256"},
    {"alg": ["HS256"]}, {"alg": ""}, {"typ": "JWT"}, {"alg": "HS256", "kid": 7}, {"alg": "HS256", "kid": "k1"},
    {"alg": "HS256", "crit": []}, {"alg": "HS256", "crit": ["b64"], "b64": True}, {"alg": "HS256", "crit": ["b64"]},
    {"alg": "HS256", "crit": ["exp"], "exp": 1}, {"alg": "HS256", "crit": "b64", "b64": True},
    {"alg": "HS256", "crit": [1]}, {"alg": "HS256", "crit": ["b64"], "b64": False}, {"alg": "HS256", "b64": False},
    ["HS256"], "HS256", b"not json", {"alg": None},
]
PAYLOADS = [
    claims(), claims(exp=...), claims(exp=None), claims(exp=str(NOW + 300)), claims(exp=NOW - 600),
    claims(exp=NOW - 10), claims(exp=NOW + 0.5), claims(exp=float(NOW - 40)), claims(exp=True),
    claims(exp=[NOW + 300]), claims(iat=NOW + 600), claims(iat=NOW + 10), claims(iat="soon"), claims(iat=None),
    claims(nbf=NOW + 600), claims(nbf=NOW + 10), claims(nbf=str(NOW)), claims(nbf={"at": NOW}),
    claims(sub=...), claims(sub=None), claims(sub=""), claims(sub="  "), claims(sub=12), claims(sub=["a"]),
    claims(sub="x" * 257), claims(sub="x" * 256), claims(aud=...), claims(aud=""), claims(aud=[]),
    claims(aud="other"), claims(aud=["other", AUDIENCE]), claims(aud=["other"]), claims(aud=[AUDIENCE, 3]),
    claims(aud={"name": AUDIENCE}), claims(iss=...), claims(iss=None), claims(iss="https://evil.test"),
    claims(iss=[ISSUER]), claims(jti=5), claims(jti="j-1"), claims(topics=["orders"]), claims(topics="orders"),
    claims(topics=[1]), [1, 2], "text", b"not json", b"", claims(exp=float("nan")), claims(exp=2**40),
]


def pyjwt_verdict(token_text: str, config: TokenVerifierConfig) -> Any:
    """What ClientTokenVerifier answered when PyJWT decoded HMAC tokens (its public-key path still does)."""
    options: Any = {"require": ["exp", "sub"], "verify_aud": config.audience is not None, "enforce_minimum_key_length": True}
    algorithms = list(config.algorithms or ("HS256",))
    try:
        payload = jwt.decode(
            token_text, SECRET, algorithms=algorithms, options=options,
            audience=config.audience, issuer=config.issuer, leeway=config.leeway_seconds,
        )
        return tokens._claims_from(payload)
    except jwt.PyJWTError as error:
        return tokens._rejection_for(error).reason
    except TokenRejected as rejected:
        return rejected.reason


async def our_verdict(token_text: str, config: TokenVerifierConfig) -> Any:
    try:
        return await ClientTokenVerifier(config).verify(token_text)
    except TokenRejected as rejected:
        return rejected.reason


def corpus() -> list[str]:
    made = [token(header, payload) for header in HEADERS for payload in PAYLOADS[:3]]
    made += [token({"alg": "HS256"}, payload) for payload in PAYLOADS]
    made += [token({"alg": "HS512"}, claims(), algorithm="HS512"), token({"alg": "HS384"}, claims(), algorithm="HS384")]
    made += [token({"alg": "HS256"}, claims(), secret=SECRET[::-1]), token({"alg": "HS512"}, claims())]
    valid = token({"alg": "HS256"}, claims())
    head, body, signature = valid.split(".")
    made += [f"{head}.{body}.", f"{head}.{body}.{signature[:-2]}", f"{head}..{signature}", f".{body}.{signature}",
             f"{head}.{body}", f"{head}.{body}.{signature}.x", f"{head}.{body}.{signature}!", valid.replace(".", "..", 1)]
    return made


def mutations(count: int) -> list[str]:
    """Valid tokens with one character replaced, inserted or removed, anywhere."""
    chooser = random.Random(20261130)
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.="
    originals = [token({"alg": "HS256"}, claims()), token({"alg": "HS512"}, claims(), algorithm="HS512")]
    mutated = []
    for _ in range(count):
        text = chooser.choice(originals)
        at = chooser.randrange(len(text))
        edit = chooser.choice(("replace", "insert", "delete"))
        character = chooser.choice(alphabet)
        if edit == "replace":
            mutated.append(text[:at] + character + text[at + 1:])
        elif edit == "insert":
            mutated.append(text[:at] + character + text[at:])
        else:
            mutated.append(text[:at] + text[at + 1:])
    return mutated


@pytest.mark.anyio
@pytest.mark.parametrize("settings", CONFIGS, ids=lambda settings: ",".join(settings) or "defaults")
async def test_every_handmade_token_gets_pyjwts_verdict(settings) -> None:
    config = TokenVerifierConfig(hs256_secret=SECRET, **settings)
    disagreements = []
    for text in corpus():
        expected, got = pyjwt_verdict(text, config), await our_verdict(text, config)
        if expected != got:
            disagreements.append((text, expected, got))

    assert disagreements == []


@pytest.mark.anyio
async def test_single_character_mutations_get_pyjwts_verdict() -> None:
    config = TokenVerifierConfig(hs256_secret=SECRET, algorithms=("HS256", "HS512"))
    disagreements = []
    for text in mutations(3000):
        if text.endswith("=") or "=." in text:
            continue  # padding: deliberately stricter, below
        expected, got = pyjwt_verdict(text, config), await our_verdict(text, config)
        if expected != got:
            disagreements.append((text, expected, got))

    assert disagreements == []


@pytest.mark.anyio
@pytest.mark.parametrize(
    "text",
    [
        token({"alg": "HS256"}, claims()) + "=",
        token({"alg": "HS256"}, json.dumps(claims()).encode("utf-16")),
        token({"alg": "HS256"}, claims(exp=10**400)),
        token({"alg": "HS256"}, b'{"sub": "client-\\ud800", "exp": 9999999999}'),
    ],
    ids=["padded", "utf-16", "huge-exp", "lone-surrogate"],
)
async def test_deliberately_stricter_than_pyjwt(text) -> None:
    assert await our_verdict(text, TokenVerifierConfig(hs256_secret=SECRET)) == "malformed"


def test_a_public_key_posing_as_the_hmac_secret_is_refused_at_startup() -> None:
    public_key = "-----BEGIN PUBLIC KEY-----\n" + "A" * 64 + "\n-----END PUBLIC KEY-----"

    with pytest.raises(ValueError, match="public key"):
        TokenVerifierConfig(hs256_secret=public_key)


@pytest.mark.anyio
@pytest.mark.parametrize(
    "text",
    [token({"alg": "HS256"}, b'{"sub": "client-1", "exp": 9999999999, "x": [1,}'), token(b"{nope", claims()),
     token({"alg": "HS256"}, claims(exp="soon"))],
    ids=["payload-not-json", "header-not-json", "exp-not-a-number"],
)
async def test_a_rejection_carries_no_parser_error_with_the_decoded_text(text) -> None:
    with pytest.raises(TokenRejected) as caught:
        await ClientTokenVerifier(TokenVerifierConfig(hs256_secret=SECRET)).verify(text)

    assert caught.value.__context__ is None and caught.value.__cause__ is None
