//! The event feed as a [`Stream`] of [`EventView`]s that resumes by
//! itself: after a disconnect it reconnects with the id of the last event it
//! gave (`Last-Event-ID`), so every event arrives once, in order.

use std::pin::Pin;
use std::time::Duration;

use eventsource_stream::Eventsource as _;
use futures_util::{Stream, StreamExt as _};
use reqwest::header::{AUTHORIZATION, HeaderValue};
use reqwest::{StatusCode, Url};
use sessiond_api::{EventView, ProblemBody};
use sessiond_engine::EventKind;

use crate::error::Error;

/// A quiet stream gets a heartbeat every 15 s by default: this long with
/// nothing read means the connection is dead.
const READ_TIMEOUT: Duration = Duration::from_secs(60);

/// First wait before reconnecting; it doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Where a subscription starts.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum StartAt {
    /// With what happens from now on.
    #[default]
    Now,
    /// With the oldest event the server still keeps.
    Oldest,
    /// Right after the event with this id (an earlier [`EventView::id`]).
    After(String),
}

/// What to subscribe to.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EventsRequest {
    /// Where to start.
    pub start: StartAt,
    /// Only this user's events.
    pub user_id: Option<String>,
    /// Only these kinds (all when empty).
    pub types: Vec<EventKind>,
}

/// The events, each once and in order. Transport failures and 503s are
/// retried (waiting 100 ms, doubling up to 5 s); the stream ends after an
/// error it cannot get past: a bad request, a wrong API key, a store
/// without a feed, or [`Error::CursorExpired`] when the events after the
/// last id have left the feed.
pub type EventStream = Pin<Box<dyn Stream<Item = Result<EventView, Error>> + Send>>;

type Sse = Pin<
    Box<
        dyn Stream<
                Item = Result<
                    eventsource_stream::Event,
                    eventsource_stream::EventStreamError<reqwest::Error>,
                >,
            > + Send,
    >,
>;

/// The subscription's state between events.
struct Subscription {
    http: reqwest::Client,
    url: Url,
    auth: HeaderValue,
    /// Id of the last event given out: where a reconnection resumes.
    last_id: Option<String>,
    open: Option<Sse>,
    backoff: Duration,
    ended: bool,
}

/// Subscribe to `url` (`/v1/events` with the request's query) as the
/// admin whose `Authorization` is `auth`.
pub(crate) fn subscribe(
    url: Url,
    auth: HeaderValue,
    connect_timeout: Duration,
    request: &EventsRequest,
) -> Result<EventStream, Error> {
    let http = reqwest::Client::builder()
        .connect_timeout(connect_timeout)
        .read_timeout(READ_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("sessiond-client/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| Error::Config(format!("cannot build the HTTP client: {e}")))?;
    let mut url = url;
    {
        let mut query = url.query_pairs_mut();
        if let Some(user) = &request.user_id {
            query.append_pair("user_id", user);
        }
        if !request.types.is_empty() {
            let types: Vec<_> = request.types.iter().map(|k| k.as_str()).collect();
            query.append_pair("types", &types.join(","));
        }
        match &request.start {
            StartAt::Now => {}
            StartAt::Oldest => {
                query.append_pair("from", "oldest");
            }
            StartAt::After(_) => {}
        }
    }
    if url.query() == Some("") {
        url.set_query(None);
    }
    let last_id = match &request.start {
        StartAt::After(id) => Some(id.clone()),
        _ => None,
    };
    let subscription = Subscription {
        http,
        url,
        auth,
        last_id,
        open: None,
        backoff: FIRST_BACKOFF,
        ended: false,
    };
    Ok(Box::pin(futures_util::stream::unfold(
        subscription,
        |mut s| async move { s.next().await.map(|item| (item, s)) },
    )))
}

impl Subscription {
    async fn next(&mut self) -> Option<Result<EventView, Error>> {
        loop {
            if self.ended {
                return None;
            }
            let Some(open) = self.open.as_mut() else {
                match connect(self.request()).await {
                    Ok(stream) => self.open = Some(stream),
                    Err(e) if retried(&e) => self.wait().await,
                    Err(e) => {
                        self.ended = true;
                        return Some(Err(e));
                    }
                }
                continue;
            };
            match open.next().await {
                Some(Ok(event)) if event.event == "error" => {
                    self.ended = true;
                    return Some(Err(stream_error(&event.data)));
                }
                // An id alone: the server read past filtered-out events.
                Some(Ok(event)) if event.data.is_empty() => {
                    if !event.id.is_empty() {
                        self.last_id = Some(event.id);
                    }
                }
                Some(Ok(event)) => {
                    self.backoff = FIRST_BACKOFF;
                    return Some(match serde_json::from_str::<EventView>(&event.data) {
                        Ok(view) => {
                            self.last_id = Some(view.id.clone());
                            Ok(view)
                        }
                        Err(e) => Err(Error::Decode(e.to_string())),
                    });
                }
                // The connection broke or the server closed it: resume.
                Some(Err(_)) | None => {
                    self.open = None;
                    self.wait().await;
                }
            }
        }
    }

    /// The request that (re)opens the stream, resuming after the last id.
    fn request(&self) -> reqwest::RequestBuilder {
        let request = self
            .http
            .get(self.url.clone())
            .header(AUTHORIZATION, self.auth.clone());
        match &self.last_id {
            Some(id) => request.header("Last-Event-ID", id),
            None => request,
        }
    }

    async fn wait(&mut self) {
        tokio::time::sleep(self.backoff).await;
        self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
    }
}

/// Open the stream: its events, or the error of a non-200 answer.
async fn connect(request: reqwest::RequestBuilder) -> Result<Sse, Error> {
    let response = request.send().await.map_err(|e| Error::transport(&e))?;
    let status = response.status();
    if status != StatusCode::OK {
        let headers = response.headers().clone();
        let body = response.bytes().await.unwrap_or_default();
        return Err(Error::from_status(status, &headers, &body));
    }
    Ok(Box::pin(response.bytes_stream().eventsource()))
}

/// Whether a failed connection is worth another try.
fn retried(e: &Error) -> bool {
    matches!(e, Error::Unavailable { .. } | Error::RateLimited { .. })
}

/// The error an `event: error` carries (a problem).
fn stream_error(data: &str) -> Error {
    match serde_json::from_str::<ProblemBody>(data) {
        Ok(problem) if problem.status == 410 => Error::CursorExpired {
            detail: problem.detail,
        },
        Ok(problem) => Error::Server {
            status: problem.status,
            detail: problem.detail,
        },
        Err(e) => Error::Decode(e.to_string()),
    }
}
