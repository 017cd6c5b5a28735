"""The example app against a real sessiond: SESSIOND_URL and SESSIOND_API_KEY
name a running `sessiond serve` (the repository's test suite starts one).
Each "device" is its own client with its own cookie jar."""
import os

import httpx
import pytest
from fastapi.testclient import TestClient

from app import create_app

CHROME = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 "
          "(KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36")
IPHONE = ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 "
          "(KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1")
JSON = {"content-type": "application/json"}


@pytest.fixture
def device():
    """A factory of devices: one app client each, closed after the test."""
    opened = []

    def make(user_agent=CHROME, **app_args) -> TestClient:
        client = TestClient(create_app(**app_args), headers={"user-agent": user_agent})
        client.__enter__()
        opened.append(client)
        return client

    yield make
    for client in opened:
        client.__exit__(None, None, None)


def log_in(client, user="alice", password="correct horse", **kwargs):
    return client.post("/login", json={"username": user, "password": password}, **kwargs)


def test_wrong_password_is_401(device):
    r = log_in(device(), password="nope")
    assert r.status_code == 401
    assert r.json() == {"error": "wrong user name or password", "login": "/login"}


def test_login_protected_route_and_logout(device):
    laptop = device()
    assert laptop.get("/me").status_code == 401
    r = log_in(laptop)
    assert r.status_code == 204
    cookie = r.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie
    # Plain http (local development): not Secure, or browsers would drop it.
    assert "Secure" not in cookie
    me = laptop.get("/me")
    assert me.status_code == 200
    assert me.json()["user"] == "alice"
    assert me.headers["cache-control"] == "no-store"
    assert laptop.post("/logout", headers=JSON).status_code == 204
    r = laptop.get("/me")
    assert r.status_code == 401
    assert r.json()["login"] == "/login"


def test_the_cookie_is_secure_behind_https(device):
    r = log_in(device(), user="bob", password="battery staple",
               headers={"x-forwarded-proto": "https"})
    assert r.status_code == 204
    assert "Secure" in r.headers["set-cookie"]


def test_devices_and_signing_out_others(device):
    laptop, phone, tablet = device(CHROME), device(IPHONE), device(IPHONE)
    for client in (laptop, phone, tablet):
        assert log_in(client, user="alice").status_code == 204
    listed = laptop.get("/devices").json()["devices"]
    assert "Chrome on Windows 10" in {d["name"] for d in listed}
    assert "mobile" in {d["kind"] for d in listed}
    assert [d["current"] for d in listed].count(True) == 1
    # The phone signs the tablet out.
    tablet_id = tablet.get("/me").json()["session_id"]
    assert phone.request("DELETE", f"/devices/{tablet_id}", headers=JSON).status_code == 204
    assert tablet.get("/me").status_code == 401
    # An id that is not one of the caller's devices.
    r = phone.request("DELETE", "/devices/AAAAAAAAAAAAAAAAAAAAAA", headers=JSON)
    assert r.status_code == 404
    r = laptop.post("/devices/sign-out-others", headers=JSON)
    assert r.status_code == 200
    assert r.json()["signed_out"] >= 1
    assert phone.get("/me").status_code == 401
    assert laptop.get("/me").status_code == 200


def test_changes_must_be_json(device):
    laptop = device()
    assert log_in(laptop).status_code == 204
    assert laptop.post("/devices/sign-out-others").status_code == 415


def test_unreachable_sessiond_is_503_with_retry_after(device):
    laptop = device(sessiond_url="http://127.0.0.1:1")
    laptop.cookies.set("sid", "st_anything")
    r = laptop.get("/me")
    assert r.status_code == 503
    assert r.headers["retry-after"] == "1"
    assert log_in(laptop).status_code == 503


def test_a_refused_api_key_is_503_not_500(device):
    r = log_in(device(api_key="sdk_not-the-key-0123456789"))
    assert r.status_code == 503


@pytest.mark.parametrize("status", [429, 503])
def test_busy_sessiond_is_503_with_its_retry_after(device, status):
    answer = httpx.Response(status, headers={"retry-after": "7"},
                            json={"type": "about:blank", "title": "busy", "status": status})
    laptop = device(transport=httpx.MockTransport(lambda _request: answer))
    laptop.cookies.set("sid", "st_anything")
    r = laptop.get("/me")
    assert r.status_code == 503
    assert r.headers["retry-after"] == "7"
