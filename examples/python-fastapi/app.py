"""A FastAPI app whose sessions live in sessiond: log in, a protected route,
log out, "my devices", sign out a device or every other one.

Run it: SESSIOND_URL=http://127.0.0.1:7420 SESSIOND_API_KEY=... \
        uvicorn --factory app:create_app
"""
import ipaddress
import logging
import os
import secrets
from contextlib import asynccontextmanager
from urllib.parse import quote

import httpx
from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel

log = logging.getLogger("app")
COOKIE = "sid"

# --- readme:start ---
class Unavailable(Exception):
    """sessiond cannot answer now: the app answers 503, never "logged in"."""

    def __init__(self, retry_after: str = "1"):
        self.retry_after = retry_after


async def sessiond(request: Request, method: str, path: str, **kwargs) -> httpx.Response:
    """Call sessiond; 429/503, a refused key or no answer become Unavailable."""
    client: httpx.AsyncClient = request.app.state.sessiond
    try:
        r = await client.request(method, path, **kwargs)
    except httpx.HTTPError as e:
        log.warning("sessiond unreachable: %s", e)
        raise Unavailable() from e
    if r.status_code in (429, 503):
        raise Unavailable(r.headers.get("retry-after", "1"))
    if r.status_code == 401:
        log.error("sessiond refused the API key (SESSIOND_API_KEY)")
        raise Unavailable()
    return r


async def current_session(request: Request) -> dict:
    """The caller's live session, or 401 (send the user to /login)."""
    token = request.cookies.get(COOKIE)
    if not token:
        raise HTTPException(401, "log in first")
    r = await sessiond(request, "POST", "/v1/sessions/introspect", json={"token": token})
    body = r.json()
    if not body.get("active"):
        raise HTTPException(401, "log in again")
    return body["session"]  # id, user_id, role, data, device, expires_at...
# --- readme:end ---


USERS = {"alice": "correct horse", "bob": "battery staple"}  # your user store
routes = APIRouter()


def user_sessions(user_id: str) -> str:
    return f"/v1/users/{quote(user_id, safe='')}/sessions"


def secure_cookie(request: Request) -> bool:
    """COOKIE_SECURE=auto (the default): Secure on https, also behind a proxy
    that sets X-Forwarded-Proto; not on plain http in local development,
    where browsers would drop the cookie."""
    setting = os.environ.get("COOKIE_SECURE", "auto")
    if setting in ("true", "false"):
        return setting == "true"
    return request.headers.get("x-forwarded-proto", request.url.scheme) == "https"


def client_ip(request: Request) -> str | None:
    """The peer's address (behind a proxy, take it from the proxy's header)."""
    host = request.client.host if request.client else None
    try:
        return str(ipaddress.ip_address(host)) if host else None
    except ValueError:
        return None


class Login(BaseModel):
    username: str
    password: str


@routes.post("/login", status_code=204)
async def login(body: Login, request: Request, response: Response):
    expected = USERS.get(body.username)
    if expected is None or not secrets.compare_digest(expected, body.password):
        raise HTTPException(401, "wrong user name or password")
    r = await sessiond(request, "POST", "/v1/sessions", json={
        "user_id": body.username,
        "user_agent": request.headers.get("user-agent"),
        "ip": client_ip(request),
    })
    if r.status_code == 409:
        raise HTTPException(409, "too many sessions: sign out another device first")
    r.raise_for_status()
    response.set_cookie(COOKIE, r.json()["token"], httponly=True, samesite="lax",
                        secure=secure_cookie(request), path="/")


@routes.get("/me")
async def me(session: dict = Depends(current_session)):
    return {"user": session["user_id"], "session_id": session["id"]}


def device_name(device: dict) -> str:
    browser, os_name = device.get("browser"), device.get("os")
    if browser and os_name:
        return f"{browser} on {os_name}"
    return browser or os_name or "Unknown device"


@routes.get("/devices")
async def devices(request: Request, session: dict = Depends(current_session)):
    r = await sessiond(request, "GET", user_sessions(session["user_id"]))
    r.raise_for_status()
    return {"devices": [
        {
            "id": s["id"],
            "name": device_name(s["device"]),
            "kind": s["device"]["kind"],
            "ip": s["device"].get("ip"),
            "last_seen_at": s["last_seen_at"],
            "current": s["id"] == session["id"],
        }
        for s in r.json()["sessions"]
    ]}


@routes.delete("/devices/{session_id}", status_code=204)
async def sign_out_device(session_id: str, request: Request,
                          session: dict = Depends(current_session)):
    # Only the caller's own devices: session ids are not secrets.
    r = await sessiond(request, "GET", user_sessions(session["user_id"]))
    r.raise_for_status()
    if session_id not in {s["id"] for s in r.json()["sessions"]}:
        raise HTTPException(404, "no such device")
    r = await sessiond(request, "DELETE", f"/v1/sessions/{session_id}",
                       params={"reason": "revoked_by_user"})
    r.raise_for_status()


@routes.post("/devices/sign-out-others")
async def sign_out_others(request: Request, session: dict = Depends(current_session)):
    r = await sessiond(request, "DELETE", user_sessions(session["user_id"]),
                       params={"except": session["id"], "reason": "signed_out_other_devices"})
    r.raise_for_status()
    return {"signed_out": r.json()["revoked"]}


@routes.post("/logout", status_code=204)
async def logout(request: Request, response: Response,
                 session: dict = Depends(current_session)):
    r = await sessiond(request, "DELETE", f"/v1/sessions/{session['id']}",
                       params={"reason": "logout"})
    r.raise_for_status()
    response.delete_cookie(COOKIE, path="/")


async def unavailable(_request: Request, exc: Unavailable):
    return JSONResponse({"error": "sessions are unavailable, try again shortly"},
                        status_code=503, headers={"Retry-After": exc.retry_after})


async def problem(_request: Request, exc: HTTPException):
    body = {"error": exc.detail}
    if exc.status_code == 401:
        body["login"] = "/login"
    return JSONResponse(body, status_code=exc.status_code)


async def json_changes_and_no_store(request: Request, call_next):
    """Cookie-authenticated changes must be JSON: a cross-site form cannot send
    that without a CORS preflight (with SameSite=Lax, this is the CSRF guard).
    Nothing personal is cached."""
    if request.method in ("POST", "DELETE", "PATCH", "PUT"):
        kind = request.headers.get("content-type", "").split(";")[0].strip()
        if kind != "application/json":
            return JSONResponse({"error": "send application/json"}, status_code=415)
    response = await call_next(request)
    response.headers["Cache-Control"] = "no-store"
    return response


def create_app(sessiond_url: str | None = None, api_key: str | None = None,
               transport: httpx.AsyncBaseTransport | None = None) -> FastAPI:
    """The app, talking to sessiond at SESSIOND_URL with SESSIOND_API_KEY (the
    admin key: keep it server-side) unless given."""
    url = sessiond_url or os.environ.get("SESSIOND_URL", "http://127.0.0.1:7420")
    key = api_key or os.environ["SESSIOND_API_KEY"]

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        async with httpx.AsyncClient(base_url=url, transport=transport,
                                     headers={"Authorization": f"Bearer {key}"},
                                     timeout=httpx.Timeout(3.0)) as client:
            app.state.sessiond = client
            yield

    app = FastAPI(lifespan=lifespan)
    app.include_router(routes)
    app.add_exception_handler(Unavailable, unavailable)
    app.add_exception_handler(HTTPException, problem)
    app.middleware("http")(json_changes_and_no_store)
    return app
