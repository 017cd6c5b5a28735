//! `GET /v1/events`: the event feed as Server-Sent Events. Each event's
//! `id` is its place in the feed; a subscriber that reconnects with
//! `Last-Event-ID` gets everything after it, each event once.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{self, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::Stream;
use sessiond_api::{EventView, EventsQuery, ProblemBody};
use sessiond_engine::{Engine, Error, Event, EventCursor, EventKinds, EventQuery, EventsFrom};
use tokio::sync::watch;

use crate::extract::{AdminAuth, QueryParams};
use crate::problem::Problem;
use crate::state::AppState;

/// Events read from the store at a time.
const PAGE: u32 = 500;

/// Every change to every session, as it happens (Server-Sent Events).
///
/// A stream of Server-Sent Events (`text/event-stream`). Each event's
/// `data` is one JSON event (`id`, `type`, `at`, `reason`, `session_id`,
/// `user_id`, `device_kind`, `ip`; never a token) and its `id:` line the
/// same `id`. Reconnect with `Last-Event-ID` (browsers' `EventSource` does
/// it by itself) to get every event after it, each once. Without one, the
/// stream starts now (`from=now`) or with the oldest event kept
/// (`from=oldest`). Quiet streams get a heartbeat comment. Resuming from an
/// event older than the retention is 410; when a subscriber falls that far
/// behind while connected, it gets an `event: error` with the problem and
/// the stream ends.
#[utoipa::path(get, path = "/v1/events", tag = "admin", security(("api_key" = [])),
    params(EventsQuery, ("Last-Event-ID" = Option<String>, Header, description = "resume after this event id")),
    responses((status = 200, description = "Server-Sent Events, one per change (`data`: an event)", content_type = "text/event-stream", body = EventView),
        (status = 400, body = ProblemBody), (status = 401, body = ProblemBody),
        (status = 410, description = "Events after the given id have left the feed (past its retention)", body = ProblemBody),
        (status = 503, body = ProblemBody)))]
pub async fn events(
    State(state): State<AppState>,
    _: AdminAuth,
    headers: HeaderMap,
    QueryParams(q): QueryParams<EventsQuery>,
) -> Result<Response, Problem> {
    let query = EventQuery {
        from: start(&headers, &q)?,
        user_id: q.user_id,
        kinds: kinds(q.types.as_deref())?,
        limit: PAGE,
    };
    // The first read answers bad cursors, a store without a feed and a
    // store that is down with their status, before the stream starts.
    let first = state.engine.events(&query).await?;
    // With nothing to send yet, the subscriber still learns where it
    // stands: an `id:` alone, to resume from.
    let announce = first.events.is_empty();
    let feed = Feed {
        engine: state.engine.clone(),
        query,
        cursor: first.cursor,
        pending: first.events.into(),
        read_again: true,
        poll: state.events.poll_interval,
        stopping: state.stopping.subscribe(),
        ended: false,
        announce,
    };
    Ok(Sse::new(feed.into_stream())
        .keep_alive(
            KeepAlive::new()
                .interval(state.events.heartbeat)
                .text("heartbeat"),
        )
        .into_response())
}

/// Where the stream starts: after `Last-Event-ID` (or `last_event_id`),
/// else per `from`.
fn start(headers: &HeaderMap, q: &EventsQuery) -> Result<EventsFrom, Problem> {
    let header = headers
        .get("last-event-id")
        .map(|v| {
            v.to_str()
                .map_err(|_| Problem::bad_request("invalid Last-Event-ID: expected an event id"))
        })
        .transpose()?;
    if let Some(id) = header.or(q.last_event_id.as_deref()) {
        return EventCursor::parse(id.trim())
            .map(EventsFrom::After)
            .ok_or_else(|| Problem::bad_request("invalid Last-Event-ID: expected an event id"));
    }
    match q.from.as_deref() {
        None | Some("now") => Ok(EventsFrom::Now),
        Some("oldest") => Ok(EventsFrom::Oldest),
        Some(_) => Err(Problem::bad_request("invalid from: expected now or oldest")),
    }
}

/// The set `types` names (comma-separated); every kind when absent.
fn kinds(types: Option<&str>) -> Result<EventKinds, Problem> {
    let Some(types) = types else {
        return Ok(EventKinds::ALL);
    };
    EventKinds::parse_list(types).ok_or_else(|| {
        Problem::bad_request(format!(
            "invalid types: expected a comma-separated list of {}",
            EventKinds::accepted()
        ))
    })
}

/// One subscriber's position and what it has read but not yet sent.
struct Feed {
    engine: Engine,
    query: EventQuery,
    cursor: EventCursor,
    pending: VecDeque<Event>,
    /// The last read moved the cursor: more may be waiting, read at once.
    read_again: bool,
    poll: Duration,
    stopping: watch::Receiver<bool>,
    ended: bool,
    /// Send the cursor as an `id:` alone before reading on.
    announce: bool,
}

impl Feed {
    fn into_stream(self) -> impl Stream<Item = Result<sse::Event, Infallible>> {
        futures_util::stream::unfold(self, |mut feed| async move {
            feed.next().await.map(|event| (Ok(event), feed))
        })
    }

    /// The next SSE event; `None` when the stream ends (server stopping,
    /// or the subscriber fell behind the retention).
    async fn next(&mut self) -> Option<sse::Event> {
        loop {
            if let Some(event) = self.pending.pop_front() {
                return Some(data_event(event));
            }
            if std::mem::take(&mut self.announce) {
                return Some(sse::Event::default().id(self.cursor.as_str()));
            }
            if self.ended || *self.stopping.borrow() {
                return None;
            }
            if !self.read_again {
                tokio::select! {
                    () = tokio::time::sleep(self.poll) => {}
                    _ = self.stopping.changed() => return None,
                }
            }
            let query = EventQuery {
                from: EventsFrom::After(self.cursor.clone()),
                ..self.query.clone()
            };
            match self.engine.events(&query).await {
                Ok(page) => {
                    self.read_again = page.cursor != self.cursor;
                    self.cursor = page.cursor;
                    // Everything read was filtered out: move the
                    // subscriber's last id past it anyway (an `id:` with no
                    // data dispatches nothing), so that it does not resume
                    // from behind events that may leave the feed meanwhile.
                    self.announce = page.events.is_empty() && self.read_again;
                    self.pending.extend(page.events);
                }
                Err(e @ Error::CursorExpired(_)) => {
                    self.ended = true;
                    return Some(error_event(&Problem::from(e).body()));
                }
                Err(e) => {
                    // The subscriber keeps its place; heartbeats go on.
                    tracing::warn!(error = %e, "reading the event feed failed; retrying");
                    self.read_again = false;
                }
            }
        }
    }
}

fn data_event(event: Event) -> sse::Event {
    let id = event.cursor.as_str().to_owned();
    let view = EventView::from(event);
    sse::Event::default()
        .id(id)
        .data(serde_json::to_string(&view).unwrap_or_default())
}

fn error_event(problem: &ProblemBody) -> sse::Event {
    sse::Event::default()
        .event("error")
        .data(serde_json::to_string(problem).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use sessiond_engine::EventKind;

    #[test]
    fn types_parse_as_a_comma_separated_set() {
        assert_eq!(kinds(None).ok(), Some(EventKinds::ALL));
        assert_eq!(
            kinds(Some("revoked, expired")).ok(),
            Some(EventKinds::of([EventKind::Revoked, EventKind::Expired]))
        );
        assert!(kinds(Some("")).is_err());
        assert!(kinds(Some("revoked,touched")).is_err());
    }

    #[test]
    fn the_header_wins_over_the_query_and_from() {
        let mut headers = HeaderMap::new();
        let q = EventsQuery {
            last_event_id: Some("e.1".into()),
            from: Some("oldest".into()),
            ..EventsQuery::default()
        };
        assert_eq!(
            start(&headers, &q).ok(),
            EventCursor::parse("e.1").map(EventsFrom::After)
        );
        headers.insert("last-event-id", axum::http::HeaderValue::from_static("e.2"));
        assert_eq!(
            start(&headers, &q).ok(),
            EventCursor::parse("e.2").map(EventsFrom::After)
        );
        let plain = EventsQuery::default();
        assert_eq!(start(&HeaderMap::new(), &plain).ok(), Some(EventsFrom::Now));
        let bad = EventsQuery {
            from: Some("yesterday".into()),
            ..EventsQuery::default()
        };
        assert!(start(&HeaderMap::new(), &bad).is_err());
    }
}
