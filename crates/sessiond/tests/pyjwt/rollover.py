"""Keep verifying fresh access tokens with one long-lived PyJWKClient, as a
Python service does, while the signing key rotates.

usage: rollover.py BASE_URL API_KEY SECONDS LIFESPAN COOLDOWN
Prints one JSON object: {"ok": n, "failed": n, "kids": [...], "errors": [...]}.
"""
import json
import sys
import time
import urllib.request

import jwt  # PyJWT[crypto]


def access_token(base: str, api_key: str) -> str:
    request = urllib.request.Request(
        f"{base}/v1/sessions",
        data=json.dumps({"user_id": "alice", "mode": "jwt"}).encode(),
        headers={"Authorization": f"Bearer {api_key}", "Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.load(response)["access_token"]


def main() -> int:
    base, api_key = sys.argv[1], sys.argv[2]
    seconds, lifespan, cooldown = (float(a) for a in sys.argv[3:6])
    client = jwt.PyJWKClient(
        f"{base}/.well-known/jwks.json", lifespan=lifespan, cooldown_duration=cooldown
    )
    ok, failed, kids, errors = 0, 0, [], []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        token = access_token(base, api_key)
        kid = jwt.get_unverified_header(token)["kid"]
        if kid not in kids:
            kids.append(kid)
        try:
            key = client.get_signing_key_from_jwt(token)
            jwt.decode(token, key, algorithms=["EdDSA"], audience="sessiond", issuer="sessiond")
            ok += 1
        except jwt.exceptions.PyJWTError as e:
            failed += 1
            errors.append(f"{type(e).__name__}: {e}")
        time.sleep(0.05)
    print(json.dumps({"ok": ok, "failed": failed, "kids": kids, "errors": errors[:5]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
