"""Verify a sessiond access token offline, as a Python service would: fetch
the JWKS, pick the key by `kid`, check signature, exp, iss and aud.

usage: verify.py JWKS_URL TOKEN ISSUER AUDIENCE [--ignore-exp]
Prints "accepted <sid>" (exit 0) or "rejected <why>" (exit 3).
"""
import sys

import jwt  # PyJWT[crypto]


def main() -> int:
    jwks_url, token, issuer, audience = sys.argv[1:5]
    check_exp = "--ignore-exp" not in sys.argv[5:]
    try:
        key = jwt.PyJWKClient(jwks_url, cache_keys=False).get_signing_key_from_jwt(token)
        claims = jwt.decode(
            token,
            key,
            algorithms=["EdDSA", "ES256"],
            audience=audience,
            issuer=issuer,
            options={"verify_exp": check_exp, "require": ["exp", "iat", "sub", "jti"]},
        )
    except jwt.exceptions.PyJWTError as e:
        print(f"rejected {type(e).__name__}: {e}")
        return 3
    print(f"accepted {claims['sid']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
