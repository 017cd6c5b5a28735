"""Verify a sessiond access token offline, as a Python service would: fetch
the JWKS, pick the key by `kid`, check signature, exp, iss and aud.

usage: verify.py JWKS_URL TOKEN ISSUER AUDIENCE [--ignore-exp] [--auth-claims]
Prints "accepted <sid>" (exit 0) or "rejected <why>" (exit 3). With
--auth-claims the authentication claims (auth_time, acr, amr) are required
too, and printed after the sid as JSON.
"""
import json
import sys

import jwt  # PyJWT[crypto]


def main() -> int:
    jwks_url, token, issuer, audience = sys.argv[1:5]
    check_exp = "--ignore-exp" not in sys.argv[5:]
    auth_claims = "--auth-claims" in sys.argv[5:]
    required = ["exp", "iat", "sub", "jti"] + (["auth_time", "acr", "amr"] if auth_claims else [])
    try:
        key = jwt.PyJWKClient(jwks_url, cache_keys=False).get_signing_key_from_jwt(token)
        claims = jwt.decode(
            token,
            key,
            algorithms=["EdDSA", "ES256"],
            audience=audience,
            issuer=issuer,
            options={"verify_exp": check_exp, "require": required},
        )
    except jwt.exceptions.PyJWTError as e:
        print(f"rejected {type(e).__name__}: {e}")
        return 3
    if auth_claims:
        # PyJWT checks that they are there; their types are checked here.
        if not isinstance(claims["auth_time"], int) or claims["auth_time"] > claims["iat"]:
            print(f"rejected bad auth_time {claims['auth_time']!r}")
            return 3
        if not isinstance(claims["amr"], list) or not all(isinstance(m, str) for m in claims["amr"]):
            print(f"rejected bad amr {claims['amr']!r}")
            return 3
        picked = {k: claims[k] for k in ("auth_time", "acr", "amr")}
        print(f"accepted {claims['sid']} {json.dumps(picked)}")
        return 0
    print(f"accepted {claims['sid']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
