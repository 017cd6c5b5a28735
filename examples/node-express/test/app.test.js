// The example app against a real sessiond: SESSIOND_URL and SESSIOND_API_KEY
// name a running `sessiond serve` (the repository's test suite starts one).
// Each "device" is its own cookie jar and user agent.
import assert from "node:assert/strict";
import { after, test } from "node:test";

import { createApp } from "../app.js";

const CHROME = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36";
const IPHONE = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1";

const servers = [];
after(() => servers.forEach((s) => s.close()));

/** Serve an app on a free port; its base URL. */
async function serve(options) {
  const server = createApp(options).listen(0, "127.0.0.1");
  servers.push(server);
  await new Promise((resolve) => server.once("listening", resolve));
  return `http://127.0.0.1:${server.address().port}`;
}

const base = await serve();

/** A device: its cookie jar, a user agent, requests to `url`. */
function device(userAgent = CHROME, url = base) {
  let cookie = "";
  return {
    setCookie(value) { cookie = value; },
    async call(method, path, body, headers = {}) {
      const r = await fetch(url + path, {
        method,
        headers: {
          "user-agent": userAgent,
          ...(cookie ? { cookie } : {}),
          ...(body !== undefined || method !== "GET" ? { "content-type": "application/json" } : {}),
          ...headers,
        },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      const set = r.headers.get("set-cookie");
      if (set) cookie = set.split(";")[0];
      r.setCookie = set;
      return r;
    },
  };
}

const logIn = (d, user = "alice", password = "correct horse", headers) =>
  d.call("POST", "/login", { username: user, password }, headers);

test("a wrong password is 401", async () => {
  const r = await logIn(device(), "alice", "nope");
  assert.equal(r.status, 401);
  assert.deepEqual(await r.json(), { error: "wrong user name or password", login: "/login" });
});

test("log in, a protected route, log out", async () => {
  const laptop = device();
  assert.equal((await laptop.call("GET", "/me")).status, 401);
  const r = await logIn(laptop);
  assert.equal(r.status, 204);
  assert.match(r.setCookie, /HttpOnly/);
  assert.match(r.setCookie, /SameSite=Lax/);
  assert.doesNotMatch(r.setCookie, /Secure/, "plain http: not Secure");
  const me = await laptop.call("GET", "/me");
  assert.equal(me.status, 200);
  assert.equal((await me.json()).user, "alice");
  assert.equal(me.headers.get("cache-control"), "no-store");
  assert.equal((await laptop.call("POST", "/logout")).status, 204);
  const after = await laptop.call("GET", "/me");
  assert.equal(after.status, 401);
  assert.equal((await after.json()).login, "/login");
});

test("the cookie is Secure behind https", async () => {
  const r = await logIn(device(), "bob", "battery staple", { "x-forwarded-proto": "https" });
  assert.equal(r.status, 204);
  assert.match(r.setCookie, /Secure/);
});

test("devices, signing one out, and signing out the others", async () => {
  const laptop = device(CHROME);
  const phone = device(IPHONE);
  const tablet = device(IPHONE);
  for (const d of [laptop, phone, tablet]) assert.equal((await logIn(d)).status, 204);
  const { devices } = await (await laptop.call("GET", "/devices")).json();
  assert.ok(devices.some((d) => d.name === "Chrome on Windows 10"), JSON.stringify(devices));
  assert.ok(devices.some((d) => d.kind === "mobile"));
  assert.equal(devices.filter((d) => d.current).length, 1);
  const tabletId = (await (await tablet.call("GET", "/me")).json()).session_id;
  assert.equal((await phone.call("DELETE", `/devices/${tabletId}`)).status, 204);
  assert.equal((await tablet.call("GET", "/me")).status, 401);
  assert.equal((await phone.call("DELETE", "/devices/AAAAAAAAAAAAAAAAAAAAAA")).status, 404);
  const r = await laptop.call("POST", "/devices/sign-out-others");
  assert.equal(r.status, 200);
  assert.ok((await r.json()).signed_out >= 1);
  assert.equal((await phone.call("GET", "/me")).status, 401);
  assert.equal((await laptop.call("GET", "/me")).status, 200);
});

test("changes must be JSON", async () => {
  const laptop = device();
  assert.equal((await logIn(laptop)).status, 204);
  const r = await laptop.call("POST", "/devices/sign-out-others", undefined, { "content-type": "text/plain" });
  assert.equal(r.status, 415);
});

test("an unreachable sessiond is 503 with Retry-After", async () => {
  const d = device(CHROME, await serve({ sessiondUrl: "http://127.0.0.1:1" }));
  d.setCookie("sid=st_anything");
  const r = await d.call("GET", "/me");
  assert.equal(r.status, 503);
  assert.equal(r.headers.get("retry-after"), "1");
  assert.equal((await logIn(d)).status, 503);
});

test("a refused API key is 503, not 500", async () => {
  const d = device(CHROME, await serve({ apiKey: "sdk_not-the-key-0123456789" }));
  assert.equal((await logIn(d)).status, 503);
});

for (const status of [429, 503]) {
  test(`a busy sessiond (${status}) is 503 with its Retry-After`, async () => {
    const busy = async () => new Response(JSON.stringify({ status }), {
      status, headers: { "retry-after": "7", "content-type": "application/problem+json" },
    });
    const d = device(CHROME, await serve({ fetchImpl: busy }));
    d.setCookie("sid=st_anything");
    const r = await d.call("GET", "/me");
    assert.equal(r.status, 503);
    assert.equal(r.headers.get("retry-after"), "7");
  });
}
