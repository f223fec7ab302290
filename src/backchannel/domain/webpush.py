"""Web Push (RFC 8030/8292): the VAPID key that identifies this server to push services."""

from __future__ import annotations

import base64

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec


def load_vapid_key(pem: str) -> ec.EllipticCurvePrivateKey:
    """The VAPID private key from PEM; it must be a P-256 key (RFC 8292 uses ES256)."""
    key = serialization.load_pem_private_key(pem.encode(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
        raise ValueError("BACKCHANNEL_VAPID_PRIVATE_KEY must be a P-256 EC key")
    return key


def application_server_key(key: ec.EllipticCurvePrivateKey) -> str:
    """base64url (unpadded) of the uncompressed public point: `applicationServerKey`."""
    point = key.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    return base64.urlsafe_b64encode(point).rstrip(b"=").decode()
