// An Express app whose sessions live in sessiond: log in, a protected route,
// log out, "my devices", sign out a device or every other one.
import crypto from "node:crypto";
import net from "node:net";

import cookieParser from "cookie-parser";
import express from "express";

const COOKIE = "sid";
const USERS = { alice: "correct horse", bob: "battery staple" }; // your user store

// --- readme:start ---
/** sessiond cannot answer now: the app answers 503, never "logged in". */
export class Unavailable extends Error {
  constructor(retryAfter = "1") {
    super("sessiond unavailable");
    this.retryAfter = retryAfter;
  }
}

/** A caller for sessiond's API with the admin key (keep it server-side). */
export function sessiondClient(baseUrl, apiKey, fetchImpl = fetch) {
  return async (method, path, body) => {
    let r;
    try {
      r = await fetchImpl(new URL(path, baseUrl), {
        method,
        headers: { authorization: `Bearer ${apiKey}`, "content-type": "application/json" },
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(3000),
      });
    } catch (e) {
      console.warn(`sessiond unreachable: ${e.message}`);
      throw new Unavailable();
    }
    if (r.status === 429 || r.status === 503) {
      throw new Unavailable(r.headers.get("retry-after") ?? "1");
    }
    if (r.status === 401) {
      console.error("sessiond refused the API key (SESSIOND_API_KEY)");
      throw new Unavailable();
    }
    return r;
  };
}

/** Middleware: req.session is the caller's live session, or 401. */
export const requireSession = (sessiond) => async (req, res, next) => {
  try {
    const token = req.cookies[COOKIE];
    if (!token) return res.status(401).json({ error: "log in first", login: "/login" });
    const r = await sessiond("POST", "/v1/sessions/introspect", { token });
    const { active, session } = await r.json();
    if (!active) return res.status(401).json({ error: "log in again", login: "/login" });
    req.session = session; // id, user_id, role, data, device, expires_at...
    next();
  } catch (e) {
    next(e);
  }
};
// --- readme:end ---

/** COOKIE_SECURE=auto (the default): Secure on https (req.secure honours
 * X-Forwarded-Proto with "trust proxy"), not on plain http in development,
 * where browsers would drop the cookie. */
function secureCookie(req) {
  const setting = process.env.COOKIE_SECURE ?? "auto";
  if (setting === "true" || setting === "false") return setting === "true";
  return req.secure;
}

function deviceName(device) {
  if (device.browser && device.os) return `${device.browser} on ${device.os}`;
  return device.browser ?? device.os ?? "Unknown device";
}

const userSessions = (user) => `/v1/users/${encodeURIComponent(user)}/sessions`;

async function ok(r) {
  if (!r.ok) throw new Error(`sessiond answered ${r.status}: ${await r.text()}`);
  return r.status === 204 ? null : r.json();
}

/** The app, talking to sessiond at SESSIOND_URL with SESSIOND_API_KEY unless given. */
export function createApp({
  sessiondUrl = process.env.SESSIOND_URL ?? "http://127.0.0.1:7420",
  apiKey = process.env.SESSIOND_API_KEY,
  fetchImpl = fetch,
} = {}) {
  if (!apiKey) throw new Error("set SESSIOND_API_KEY");
  const sessiond = sessiondClient(sessiondUrl, apiKey, fetchImpl);
  const session = requireSession(sessiond);
  const app = express();
  app.set("trust proxy", "loopback");
  app.use(cookieParser());
  app.use((req, res, next) => {
    res.set("Cache-Control", "no-store");
    // Cookie-authenticated changes must be JSON: a cross-site form cannot
    // send that without a CORS preflight (with SameSite=Lax, the CSRF guard).
    const type = (req.get("content-type") ?? "").split(";")[0].trim().toLowerCase();
    if (["POST", "DELETE", "PATCH", "PUT"].includes(req.method) && type !== "application/json") {
      return res.status(415).json({ error: "send application/json" });
    }
    next();
  });
  app.use(express.json());

  app.post("/login", async (req, res, next) => {
    try {
      const { username, password } = req.body ?? {};
      const expected = USERS[username];
      const given = Buffer.from(String(password ?? ""));
      if (!expected || given.length !== Buffer.byteLength(expected)
          || !crypto.timingSafeEqual(given, Buffer.from(expected))) {
        return res.status(401).json({ error: "wrong user name or password", login: "/login" });
      }
      const r = await sessiond("POST", "/v1/sessions", {
        user_id: username,
        user_agent: req.get("user-agent"),
        ip: net.isIP(req.ip ?? "") ? req.ip : undefined,
      });
      if (r.status === 409) {
        return res.status(409).json({ error: "too many sessions: sign out another device first" });
      }
      const { token } = await ok(r);
      res.cookie(COOKIE, token, { httpOnly: true, sameSite: "lax", secure: secureCookie(req), path: "/" });
      res.sendStatus(204);
    } catch (e) {
      next(e);
    }
  });

  app.get("/me", session, (req, res) => {
    res.json({ user: req.session.user_id, session_id: req.session.id });
  });

  app.get("/devices", session, async (req, res, next) => {
    try {
      const { sessions } = await ok(await sessiond("GET", userSessions(req.session.user_id)));
      res.json({
        devices: sessions.map((s) => ({
          id: s.id,
          name: deviceName(s.device),
          kind: s.device.kind,
          ip: s.device.ip ?? null,
          last_seen_at: s.last_seen_at,
          current: s.id === req.session.id,
        })),
      });
    } catch (e) {
      next(e);
    }
  });

  app.delete("/devices/:id", session, async (req, res, next) => {
    try {
      // Only the caller's own devices: session ids are not secrets.
      const { sessions } = await ok(await sessiond("GET", userSessions(req.session.user_id)));
      if (!sessions.some((s) => s.id === req.params.id)) {
        return res.status(404).json({ error: "no such device" });
      }
      await ok(await sessiond("DELETE",
        `/v1/sessions/${encodeURIComponent(req.params.id)}?reason=revoked_by_user`));
      res.sendStatus(204);
    } catch (e) {
      next(e);
    }
  });

  app.post("/devices/sign-out-others", session, async (req, res, next) => {
    try {
      const query = new URLSearchParams({ except: req.session.id, reason: "signed_out_other_devices" });
      const { revoked } = await ok(await sessiond("DELETE", `${userSessions(req.session.user_id)}?${query}`));
      res.json({ signed_out: revoked });
    } catch (e) {
      next(e);
    }
  });

  app.post("/logout", session, async (req, res, next) => {
    try {
      await ok(await sessiond("DELETE", `/v1/sessions/${req.session.id}?reason=logout`));
      res.clearCookie(COOKIE, { path: "/" });
      res.sendStatus(204);
    } catch (e) {
      next(e);
    }
  });

  // sessiond unavailable: 503 with Retry-After; anything else is a bug: 500.
  app.use((err, req, res, _next) => {
    if (err instanceof Unavailable) {
      res.set("Retry-After", err.retryAfter);
      return res.status(503).json({ error: "sessions are unavailable, try again shortly" });
    }
    if (err.type === "entity.parse.failed") {
      return res.status(400).json({ error: "invalid JSON" });
    }
    console.error(err);
    res.status(500).json({ error: "internal error" });
  });
  return app;
}
