// Code a TypeScript backend would write against the generated types: if the
// document loses a route, a schema, a query parameter or the problem+json
// error bodies, this stops compiling.
import type { components, paths } from "./generated/api";

type Session = components["schemas"]["SessionView"];
type Problem = components["schemas"]["ProblemBody"];

type CreateBody =
  paths["/v1/sessions"]["post"]["requestBody"]["content"]["application/json"];
type CreateReply =
  paths["/v1/sessions"]["post"]["responses"][201]["content"]["application/json"];

export const create: CreateBody = {
  user_id: "alice",
  role: "admin",
  data: { plan: "pro" },
  user_agent: "Mozilla/5.0",
  ip: "203.0.113.7",
};

/** The credential a created session hands to the client, either mode. */
export function credential(reply: CreateReply): string {
  return "token" in reply ? reply.token : reply.refresh_token;
}

type IntrospectReply =
  paths["/v1/sessions/introspect"]["post"]["responses"][200]["content"]["application/json"];

export function userOf(reply: IntrospectReply): string | undefined {
  return reply.active ? reply.session?.user_id : undefined;
}

// Query parameters are query parameters, optional.
type RevokeAllQuery =
  paths["/v1/users/{user_id}/sessions"]["delete"]["parameters"]["query"];
export const keepOne: RevokeAllQuery = { except: "s_1", reason: "password_changed" };
export const all: RevokeAllQuery = {};
type RevokeQuery = paths["/v1/sessions/{id}"]["delete"]["parameters"]["query"];
export const withReason: RevokeQuery = { reason: "logout" };
type UserPath = paths["/v1/users/{user_id}/sessions"]["get"]["parameters"]["path"];
export const user: UserPath = { user_id: "alice" };

// Errors are problem+json.
type Unauthorized =
  paths["/v1/me"]["get"]["responses"][401]["content"]["application/problem+json"];
type Unavailable =
  paths["/v1/sessions/introspect"]["post"]["responses"][503]["content"]["application/problem+json"];
export function explain(p: Unauthorized | Unavailable | Problem): string {
  return `${p.status} ${p.title}: ${p.detail ?? ""}`;
}

type MySessions =
  paths["/v1/me/sessions"]["get"]["responses"][200]["content"]["application/json"];
export function devices(list: MySessions): string[] {
  return list.sessions.map(
    (s: Session) => `${s.device?.browser ?? "?"} on ${s.device?.os ?? "?"}`,
  );
}

type Refreshed =
  paths["/v1/tokens/refresh"]["post"]["responses"][200]["content"]["application/json"];
export const nextRefresh = (r: Refreshed): string => r.refresh_token;

// The listing across users: typed filters, a page and the cursor of the next.
type ListQuery = NonNullable<paths["/v1/sessions"]["get"]["parameters"]["query"]>;
export const mobileSince: ListQuery = {
  device_kind: "mobile",
  created_after: "2026-03-01T00:00:00Z",
  ip: "203.0.113.7",
  limit: 500,
};
type ListPage =
  paths["/v1/sessions"]["get"]["responses"][200]["content"]["application/json"];
export function nextPage(query: ListQuery, page: ListPage): ListQuery | undefined {
  return page.next_cursor ? { ...query, cursor: page.next_cursor } : undefined;
}
export const listed = (page: ListPage): string[] => page.sessions.map((s: Session) => s.user_id);
