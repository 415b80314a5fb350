"""Which keys and algorithms a token verifier may use.

HMAC and public-key algorithms are kept in separate families: a verifier that
accepted both could be fed an HS256 token "signed" with its own public key.
"""

from __future__ import annotations

from collections.abc import Sequence
from types import MappingProxyType
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import HMACAlgorithm
from jwt.exceptions import InvalidKeyError

# RFC 7518 §3.2: an HMAC key must be at least as long as the hash output.
HMAC_MIN_SECRET_BYTES = MappingProxyType({"HS256": 32, "HS384": 48, "HS512": 64})
RSA_ALGORITHMS = frozenset({"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"})
EC_ALGORITHM_BY_CURVE = MappingProxyType({"secp256r1": "ES256", "secp384r1": "ES384", "secp521r1": "ES512"})
PUBLIC_KEY_ALGORITHMS = RSA_ALGORITHMS | frozenset(EC_ALGORITHM_BY_CURVE.values())
MIN_RSA_KEY_BITS = 2048


def require_strong_secret(secret: str, algorithms: Sequence[str]) -> None:
    needed = max(HMAC_MIN_SECRET_BYTES[name] for name in algorithms)
    if len(secret.encode()) < needed:
        raise ValueError(f"hs256_secret must be at least {needed} bytes for {', '.join(algorithms)}")


def require_hmac_secret(secret: str) -> None:
    """PyJWT's own refusal of a PEM/SSH public key or certificate used as an HMAC secret, at startup."""
    try:
        HMACAlgorithm(HMACAlgorithm.SHA256).prepare_key(secret)
    except InvalidKeyError:
        raise ValueError("hs256_secret looks like a public key or certificate, not a shared secret") from None


def load_public_key(pem: str, algorithms: Sequence[str]) -> tuple[Any, tuple[str, ...]]:
    """The key plus those of `algorithms` it can verify; ValueError if none or unusable."""
    try:
        key = serialization.load_pem_public_key(pem.encode())
    except (ValueError, TypeError):
        raise ValueError("public_key_pem is not a PEM-encoded public key") from None
    if isinstance(key, rsa.RSAPublicKey) and key.key_size >= MIN_RSA_KEY_BITS:
        usable = RSA_ALGORITHMS
    elif isinstance(key, ec.EllipticCurvePublicKey):
        usable = frozenset({EC_ALGORITHM_BY_CURVE.get(key.curve.name)})
    else:
        raise ValueError(
            f"public_key_pem must be an RSA (>= {MIN_RSA_KEY_BITS} bit) or EC P-256/384/521 public key"
        )
    matching = tuple(name for name in algorithms if name in usable)
    if not matching:
        raise ValueError(f"public_key_pem cannot verify any of algorithms {tuple(algorithms)}")
    return key, matching
