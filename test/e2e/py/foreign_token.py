"""A trust domain we do not run: an EC P-256 key held by this script, its SPIFFE bundle
document (one jwt-svid JWK), and a JWT-SVID signed by PyJWT with that key.

Usage: foreign_token.py <trust-domain> <bundle-out> <subject-path> <audience>
Writes the bundle document to <bundle-out>; prints the token and then a copy whose payload
was altered after signing.
"""
import base64
import json
import sys
import time

import jwt
from cryptography.hazmat.primitives.asymmetric import ec

td, bundle_out, path, audience = sys.argv[1:5]
key = ec.generate_private_key(ec.SECP256R1())
numbers = key.public_key().public_numbers()


def b64(n: int) -> str:
    return base64.urlsafe_b64encode(n.to_bytes(32, "big")).rstrip(b"=").decode()


kid = "foreign-key-1"
document = {
    "keys": [
        {"use": "jwt-svid", "kty": "EC", "kid": kid, "crv": "P-256",
         "x": b64(numbers.x), "y": b64(numbers.y)}
    ],
    "spiffe_sequence": 1,
}
with open(bundle_out, "w") as f:
    json.dump(document, f, indent=4)

now = int(time.time())
claims = {"sub": f"spiffe://{td}{path}", "aud": [audience], "exp": now + 300, "iat": now,
          "team": "payments"}
token = jwt.encode(claims, key, algorithm="ES256", headers={"kid": kid, "typ": "JWT"})
print(token)

header, payload, signature = token.split(".")
claims["sub"] = f"spiffe://{td}/admin"
forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
print(f"{header}.{forged}.{signature}")
