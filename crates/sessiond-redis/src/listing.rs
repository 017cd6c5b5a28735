//! The listing of all users' sessions on Redis: a walk of the key layout in
//! one fixed order — bucket by bucket (0 to 255), each bucket's tags (from
//! its deadline set, `:x`) sorted, each tag's index members (the random
//! part of a session's id, then its record's `th`) sorted — reading with
//! one pipeline per bucket, so that the keys of every command share the
//! bucket's hash slot and a Cluster serves the walk as it is. The cursor is
//! the place of the last session examined (or of the last tag or bucket
//! walked through), so a session keeps its place however others come and
//! go, and the walk meets it once.
//!
//! A page costs a few round trips per group of buckets it walks (the
//! tags, the indexes of up to [`TAGS_PER_READ`] tags, the records it
//! needs), and stops early, with a cursor, once it has examined
//! [`sessiond_engine::listing::LIST_SCAN_BUDGET`] records or read
//! [`ENTRIES_PER_PAGE`] tags and index members. A user filter walks that
//! user's tag alone.

use std::collections::BTreeMap;

use redis::{Pipeline, Value};
use sessiond_engine::listing::{LIST_SCAN_BUDGET, MAX_LIST_LIMIT};
use sessiond_engine::{
    PageCollector, Session, SessionCursor, SessionId, SessionPage, SessionQuery, ShardTag,
    StoreError, Timestamp,
};

use crate::codec;
use crate::connection::{Connection, Retry};
use crate::keys::{BUCKETS, ID_RANDOM_LEN, KeySchema, TH_LEN, bucket_of, id_random};
use crate::record;
use crate::scripts::SCRIPTS;

/// Most tags whose indexes one read takes (one pipeline per bucket among
/// them); fewer when the page wants fewer sessions (a tag in a deadline set
/// holds one at least, or a connection).
const TAGS_PER_READ: usize = 256;

/// Tags and index members one page reads at most (records are bounded by
/// the listing's own budget), once it has walked past something.
const ENTRIES_PER_PAGE: usize = 20_000;

/// Most buckets whose tags one read takes.
const MAX_BUCKETS_PER_READ: u16 = 32;

/// Records one read takes at most: a whole page, and the one that tells
/// that more follow.
const MAX_RECORDS_PER_READ: usize = MAX_LIST_LIMIT as usize + 1;

/// How far a walk has got: everything up to this place has been examined.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Place {
    /// The buckets before this one.
    Bucket(u16),
    /// Every session of this tag, and of the tags and buckets before it.
    Tag(ShardTag),
    /// This session and everything before it.
    Session(SessionId),
}

impl Place {
    /// The place a cursor names, if it is one of this store's: `b.<bucket>`,
    /// `t.<tag>` or `s.<session id>`.
    fn parse(cursor: &SessionCursor) -> Option<Self> {
        let (kind, rest) = cursor.as_str().split_once('.')?;
        match kind {
            "b" => {
                let bucket: u16 = rest.parse().ok()?;
                (bucket < BUCKETS && rest == bucket.to_string()).then_some(Self::Bucket(bucket))
            }
            "t" => ShardTag::parse(rest).map(Self::Tag),
            "s" => SessionId::parse(rest).map(Self::Session),
            _ => None,
        }
    }

    /// The cursor of this place.
    fn cursor(&self) -> Result<SessionCursor, StoreError> {
        let text = match self {
            Self::Bucket(b) => format!("b.{b}"),
            Self::Tag(t) => format!("t.{t}"),
            Self::Session(id) => format!("s.{id}"),
        };
        SessionCursor::parse(&text)
            .ok_or_else(|| StoreError::Corrupt(format!("cannot make a cursor of {text:?}")))
    }

    /// The place in comparable parts.
    fn bound(&self) -> Bound {
        match self {
            Self::Bucket(b) => Bound::Bucket(*b),
            Self::Tag(t) => Bound::Tag(bucket_of(t), t.as_str().to_owned()),
            Self::Session(id) => {
                let tag = id.shard();
                Bound::Session(
                    bucket_of(&tag),
                    tag.as_str().to_owned(),
                    id_random(id).to_owned(),
                )
            }
        }
    }
}

/// A [`Place`] as the walk compares it.
#[derive(Clone, Debug)]
enum Bound {
    Bucket(u16),
    Tag(u16, String),
    Session(u16, String, String),
}

impl Bound {
    /// The first bucket that may hold something after it.
    fn bucket(&self) -> u16 {
        match self {
            Self::Bucket(b) | Self::Tag(b, _) | Self::Session(b, _, _) => *b,
        }
    }

    /// Whether tag `tag` of bucket `bucket` may hold a session after it.
    fn tag_ahead(&self, bucket: u16, tag: &str) -> bool {
        match self {
            Self::Bucket(b) => bucket >= *b,
            Self::Tag(b, t) => (bucket, tag) > (*b, t.as_str()),
            Self::Session(b, t, _) => (bucket, tag) >= (*b, t.as_str()),
        }
    }

    /// Whether the session `random` of tag `tag` of bucket `bucket` comes
    /// after it.
    fn ahead(&self, bucket: u16, tag: &str, random: &str) -> bool {
        match self {
            Self::Session(b, t, r) => (bucket, tag, random) > (*b, t.as_str(), r.as_str()),
            other => other.tag_ahead(bucket, tag),
        }
    }
}

/// A session the walk is to examine: its place and where its record is.
#[derive(Clone, Debug)]
struct Candidate {
    bucket: u16,
    tag: ShardTag,
    id: SessionId,
    th: String,
}

/// What examining some candidates came to.
enum Flow {
    /// All examined; walk on.
    Done,
    /// The page is complete.
    Complete,
    /// The page's budget is spent.
    Spent,
}

/// One page's walk.
struct Walk<'a> {
    conn: &'a Connection,
    keys: &'a KeySchema,
    /// The scripts' retention argument (see `RedisStore::args`).
    retention: &'a str,
    now: Timestamp,
    bound: Bound,
    collector: PageCollector,
    checks_each: bool,
    place: Place,
    /// Whether `place` moved in this page.
    moved: bool,
    /// Tags and index members read.
    entries: usize,
}

/// The page `query` asks for; `retention` is the scripts' retention
/// argument.
pub(crate) async fn page(
    conn: &Connection,
    keys: &KeySchema,
    retention: &str,
    query: &SessionQuery,
    now: Timestamp,
) -> Result<SessionPage, StoreError> {
    let place = match &query.after {
        None => Place::Bucket(0),
        Some(c) => Place::parse(c).ok_or_else(|| {
            StoreError::InvalidCursor("not a listing cursor of this Redis store".into())
        })?,
    };
    let mut walk = Walk {
        conn,
        keys,
        retention,
        now,
        bound: place.bound(),
        collector: PageCollector::new(query, now),
        checks_each: query.filter.checks_each_session(),
        place,
        moved: false,
        entries: 0,
    };
    let end = match &query.filter.user_id {
        // The user's sessions are all under their tag.
        Some(user) => walk.user(ShardTag::of_user(user)).await?,
        None => walk.all().await?,
    };
    walk.finish(end)
}

impl Walk<'_> {
    /// Walk the whole layout from the bound. `true`: to its end.
    async fn all(&mut self) -> Result<bool, StoreError> {
        let first = self.bound.bucket();
        let mut bucket = first;
        let mut width: u16 = 1;
        while bucket < BUCKETS {
            if self.spent() {
                return Ok(false);
            }
            let end = bucket.saturating_add(width).min(BUCKETS);
            let tags = self.tags(bucket, end).await?;
            let mut rest = tags.as_slice();
            while !rest.is_empty() {
                if self.spent() {
                    return Ok(false);
                }
                let (chunk, after) = rest.split_at(self.tags_per_read().min(rest.len()));
                rest = after;
                let candidates = self.candidates(chunk).await?;
                match self.examine(&candidates).await? {
                    Flow::Done => {}
                    Flow::Complete | Flow::Spent => return Ok(false),
                }
                if let Some((_, last)) = chunk.last() {
                    self.walked_to(Place::Tag(last.clone()));
                }
            }
            self.walked_to(Place::Bucket(end));
            bucket = end;
            width = self.next_width(end - first, width);
        }
        Ok(true)
    }

    /// Walk the one tag of a user. `true`: to its end.
    async fn user(&mut self, tag: ShardTag) -> Result<bool, StoreError> {
        let bucket = bucket_of(&tag);
        if !self.bound.tag_ahead(bucket, tag.as_str()) {
            return Ok(true);
        }
        let candidates = self.candidates(&[(bucket, tag)]).await?;
        Ok(matches!(self.examine(&candidates).await?, Flow::Done))
    }

    /// How many tags' indexes to read next: as many as sessions are still
    /// wanted (four times as many when filters check each session), within
    /// [`TAGS_PER_READ`].
    fn tags_per_read(&self) -> usize {
        let wanted = self.collector.wanted();
        let wanted = if self.checks_each {
            wanted.saturating_mul(4)
        } else {
            wanted
        };
        wanted.clamp(16, TAGS_PER_READ)
    }

    /// Whether this page has done its share (once it got anywhere).
    fn spent(&self) -> bool {
        self.moved && (!self.collector.within_budget() || self.entries >= ENTRIES_PER_PAGE)
    }

    fn walked_to(&mut self, place: Place) {
        self.place = place;
        self.moved = true;
    }

    /// How many buckets to read next, after `walked` of them gave what the
    /// collector holds: enough for the sessions still wanted at the rate
    /// seen, twice as many when none matched yet.
    fn next_width(&self, walked: u16, width: u16) -> u16 {
        let matched = self.collector.matched();
        let next = if matched == 0 {
            usize::from(width).saturating_mul(2)
        } else {
            self.collector
                .wanted()
                .saturating_mul(usize::from(walked))
                .div_ceil(matched)
        };
        u16::try_from(next)
            .unwrap_or(MAX_BUCKETS_PER_READ)
            .clamp(1, MAX_BUCKETS_PER_READ)
    }

    /// The tags of buckets `from..to` that may hold sessions after the
    /// bound, in walk order.
    async fn tags(&mut self, from: u16, to: u16) -> Result<Vec<(u16, ShardTag)>, StoreError> {
        let pipes: Vec<Pipeline> = (from..to)
            .map(|b| {
                let mut pipe = redis::pipe();
                pipe.cmd("ZRANGE")
                    .arg(self.keys.deadlines(b))
                    .arg(0)
                    .arg(-1);
                pipe
            })
            .collect();
        let replies = self.conn.pipelines("list sessions", &pipes).await?;
        let mut tags = Vec::new();
        for (bucket, reply) in (from..to).zip(&replies) {
            let listed = reply.first().map(codec::array).transpose()?.unwrap_or(&[]);
            self.entries += listed.len();
            for v in listed {
                let text = codec::text(v)?;
                let tag = ShardTag::parse(text).ok_or_else(|| {
                    StoreError::Corrupt(format!("bucket {bucket} lists a malformed tag {text:?}"))
                })?;
                if bucket_of(&tag) == bucket && self.bound.tag_ahead(bucket, tag.as_str()) {
                    tags.push((bucket, tag));
                }
            }
        }
        tags.sort_by(|(a, x), (b, y)| (a, x.as_str()).cmp(&(b, y.as_str())));
        tags.dedup();
        Ok(tags)
    }

    /// The sessions of `tags` (in walk order) after the bound, in walk
    /// order, from their indexes.
    async fn candidates(&mut self, tags: &[(u16, ShardTag)]) -> Result<Vec<Candidate>, StoreError> {
        let members = self.indexes(tags).await?;
        let mut out = Vec::new();
        for ((bucket, tag), listed) in tags.iter().zip(members) {
            self.entries += listed.len();
            for member in listed {
                let (random, th) = split_member(&member).ok_or_else(|| {
                    StoreError::Corrupt(format!("tag {tag}: malformed index member"))
                })?;
                if !self.bound.ahead(*bucket, tag.as_str(), random) {
                    continue;
                }
                let id = SessionId::parse(&format!("{tag}{random}")).ok_or_else(|| {
                    StoreError::Corrupt(format!("tag {tag}: malformed session id in its index"))
                })?;
                out.push(Candidate {
                    bucket: *bucket,
                    tag: tag.clone(),
                    id,
                    th: th.to_owned(),
                });
            }
        }
        out.sort_by(|a, b| {
            (a.bucket, a.tag.as_str(), id_random(&a.id)).cmp(&(
                b.bucket,
                b.tag.as_str(),
                id_random(&b.id),
            ))
        });
        out.dedup_by(|a, b| a.id == b.id);
        Ok(out)
    }

    /// The index members of each of `tags`, in the same order: one
    /// pipeline per bucket.
    async fn indexes(&self, tags: &[(u16, ShardTag)]) -> Result<Vec<Vec<String>>, StoreError> {
        let mut by_bucket: BTreeMap<u16, Vec<usize>> = BTreeMap::new();
        for (i, (bucket, _)) in tags.iter().enumerate() {
            by_bucket.entry(*bucket).or_default().push(i);
        }
        let pipes: Vec<Pipeline> = by_bucket
            .values()
            .map(|positions| {
                let mut pipe = redis::pipe();
                for &i in positions {
                    pipe.cmd("ZRANGE")
                        .arg(self.keys.index(&tags[i].1))
                        .arg(0)
                        .arg(-1);
                }
                pipe
            })
            .collect();
        let replies = self.conn.pipelines("list sessions", &pipes).await?;
        let mut out = vec![Vec::new(); tags.len()];
        for (positions, reply) in by_bucket.values().zip(&replies) {
            for (&i, listed) in positions.iter().zip(reply) {
                out[i] = codec::array(listed)?
                    .iter()
                    .map(|v| codec::text(v).map(str::to_owned))
                    .collect::<Result<_, _>>()?;
            }
        }
        Ok(out)
    }

    /// Read and offer `candidates` in order, a batch at a time.
    async fn examine(&mut self, candidates: &[Candidate]) -> Result<Flow, StoreError> {
        let mut rest = candidates;
        while !rest.is_empty() {
            if self.spent() {
                return Ok(Flow::Spent);
            }
            let wanted = self.collector.wanted();
            let size = if self.checks_each {
                wanted.saturating_mul(4).max(256)
            } else {
                wanted.max(16)
            };
            let room = LIST_SCAN_BUDGET
                .saturating_sub(self.collector.examined())
                .max(1);
            let (batch, after) =
                rest.split_at(size.min(MAX_RECORDS_PER_READ).min(room).min(rest.len()));
            let found = self.records(batch).await?;
            for (candidate, session) in batch.iter().zip(found) {
                let more = self.collector.offer(session);
                self.walked_to(Place::Session(candidate.id.clone()));
                if !more {
                    return Ok(Flow::Complete);
                }
            }
            rest = after;
        }
        Ok(Flow::Done)
    }

    /// The sessions of `batch`, in order (`None` where there is none): the
    /// records its index members name, one pipeline of GETs per bucket. A
    /// record that vanished since its index was read is looked up by id
    /// (the get script: index and record in one atomic step), since a
    /// rotation files the same session under a new `th`.
    async fn records(&self, batch: &[Candidate]) -> Result<Vec<Option<Session>>, StoreError> {
        let raws = self.read_records(batch).await?;
        let mut found = Vec::with_capacity(batch.len());
        let mut missing = Vec::new();
        for (i, (candidate, raw)) in batch.iter().zip(raws).enumerate() {
            match raw {
                Some(raw) => {
                    let (session, _) = record::decode(&raw, &candidate.tag)?;
                    found.push((session.id == candidate.id).then_some(session));
                }
                None => {
                    found.push(None);
                    missing.push(i);
                }
            }
        }
        let lookups = missing.iter().map(|&i| self.by_id(&batch[i].id));
        let looked_up = futures_util::future::try_join_all(lookups).await?;
        for (i, session) in missing.into_iter().zip(looked_up) {
            found[i] = session;
        }
        Ok(found)
    }

    /// The live session `id`, by the get script (its index member and
    /// record read in one atomic step).
    async fn by_id(&self, id: &SessionId) -> Result<Option<Session>, StoreError> {
        let tag = id.shard();
        let args: Vec<Vec<u8>> = vec![
            self.keys.base(&tag).into_bytes(),
            self.now.as_millis().to_string().into_bytes(),
            self.retention.as_bytes().to_vec(),
            id_random(id).as_bytes().to_vec(),
        ];
        let reply = self
            .conn
            .eval(&SCRIPTS.get, &[self.keys.index(&tag)], &args, Retry::Once)
            .await?;
        codec::maybe_session(&reply, &tag)
    }

    /// GET the record of each of `batch`, in order: one pipeline per
    /// bucket.
    async fn read_records(&self, batch: &[Candidate]) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        let mut by_bucket: BTreeMap<u16, Vec<usize>> = BTreeMap::new();
        for (i, candidate) in batch.iter().enumerate() {
            by_bucket.entry(candidate.bucket).or_default().push(i);
        }
        let pipes: Vec<Pipeline> = by_bucket
            .values()
            .map(|positions| {
                let mut pipe = redis::pipe();
                for &i in positions {
                    let c = &batch[i];
                    pipe.cmd("GET").arg(self.keys.record_at(&c.tag, &c.th));
                }
                pipe
            })
            .collect();
        let replies = self.conn.pipelines("list sessions", &pipes).await?;
        let mut out = vec![None; batch.len()];
        for (positions, reply) in by_bucket.values().zip(&replies) {
            for (&i, value) in positions.iter().zip(reply) {
                out[i] = match value {
                    Value::Nil => None,
                    Value::BulkString(bytes) => Some(bytes.clone()),
                    other => {
                        return Err(StoreError::Corrupt(format!(
                            "unexpected reply to GET: {other:?}"
                        )));
                    }
                };
            }
        }
        Ok(out)
    }

    /// The page: `end` when the walk reached the end of what it walks.
    fn finish(self, end: bool) -> Result<SessionPage, StoreError> {
        let walked_to = if end {
            None
        } else {
            Some(self.place.cursor()?)
        };
        let mut failed = None;
        let page = self.collector.finish(
            |s| match Place::Session(s.id.clone()).cursor() {
                Ok(c) => c,
                Err(e) => {
                    failed = Some(e);
                    SessionCursor::after_id(&s.id)
                }
            },
            walked_to,
        );
        match failed {
            Some(e) => Err(e),
            None => Ok(page),
        }
    }
}

/// An index member's parts: the random part of its session's id, and the
/// `th` its record is filed under.
fn split_member(member: &str) -> Option<(&str, &str)> {
    (member.len() == ID_RANDOM_LEN + TH_LEN && member.is_ascii())
        .then(|| member.split_at(ID_RANDOM_LEN))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use sessiond_engine::{CreateRequest, Engine, Policy, SessionFilter, Store};
    use sessiond_testkit::redis_server::RedisServer;

    use super::*;
    use crate::{RedisOptions, RedisStore};

    /// A session rotated after the walk read its index, before it read its
    /// record, is found under its new record all the same.
    #[tokio::test]
    async fn a_rotation_between_index_and_record_is_followed() {
        let server = tokio::task::spawn_blocking(RedisServer::start)
            .await
            .unwrap();
        let options = RedisOptions {
            sweep_interval: std::time::Duration::ZERO,
            ..RedisOptions::default()
        };
        let store = RedisStore::connect(&server.url(), options).await.unwrap();
        let engine = Engine::new(Arc::new(store.clone()) as Arc<dyn Store>, Policy::default());
        let created = engine
            .create(CreateRequest {
                user_id: "alice".into(),
                ..CreateRequest::default()
            })
            .await
            .unwrap();
        let query = SessionQuery {
            filter: SessionFilter::default(),
            limit: 10,
            after: None,
        };
        let mut walk = Walk {
            conn: &store.conn,
            keys: &store.keys,
            retention: &store.sweeper.retention_arg,
            now: engine.now(),
            bound: Place::Bucket(0).bound(),
            collector: PageCollector::new(&query, engine.now()),
            checks_each: false,
            place: Place::Bucket(0),
            moved: false,
            entries: 0,
        };
        let tag = created.session.id.shard();
        let candidates = walk.candidates(&[(bucket_of(&tag), tag)]).await.unwrap();
        assert_eq!(candidates.len(), 1);
        for _ in 0..3 {
            engine.rotate(created.session.id.as_str()).await.unwrap();
        }
        let found = walk.records(&candidates).await.unwrap();
        let found = found[0].as_ref().expect("found under its new record");
        assert_eq!(found.id, created.session.id);
        // A session revoked meanwhile is simply not there.
        engine
            .revoke(
                created.session.id.as_str(),
                sessiond_engine::RevokeReason::Logout,
            )
            .await
            .unwrap();
        assert_eq!(walk.records(&candidates).await.unwrap(), vec![None]);
    }

    #[test]
    fn cursors_round_trip_and_refuse_what_is_not_theirs() {
        let tag = ShardTag::of_user("alice");
        let id = SessionId::generate(&tag);
        for place in [
            Place::Bucket(0),
            Place::Bucket(255),
            Place::Tag(tag.clone()),
            Place::Session(id.clone()),
        ] {
            let cursor = place.cursor().unwrap();
            assert_eq!(Place::parse(&cursor), Some(place));
        }
        for bad in [
            "b.256",
            "b.01",
            "b.-1",
            "b.",
            "t.short",
            &format!("s.{tag}"),
            id.as_str(),
            &format!("x.{id}"),
        ] {
            let c = SessionCursor::parse(bad).unwrap();
            assert_eq!(Place::parse(&c), None, "{bad}");
        }
    }

    #[test]
    fn places_order_buckets_then_tags_then_ids() {
        let tag = ShardTag::of_user("alice");
        let b = bucket_of(&tag);
        let id = SessionId::generate(&tag);
        let r = id_random(&id);
        let at_tag = Place::Tag(tag.clone()).bound();
        assert!(!at_tag.tag_ahead(b, tag.as_str()));
        assert!(!at_tag.ahead(b, tag.as_str(), r));
        let at_session = Place::Session(id.clone()).bound();
        assert!(
            at_session.tag_ahead(b, tag.as_str()),
            "later ids of the tag"
        );
        assert!(!at_session.ahead(b, tag.as_str(), r), "not itself");
        assert!(at_session.ahead(b, tag.as_str(), &format!("{r}~")));
        assert!(at_session.ahead(b + 1, "A", "A") || b == BUCKETS - 1);
        let at_bucket = Place::Bucket(b).bound();
        assert!(at_bucket.ahead(b, tag.as_str(), r));
        assert!(b == 0 || !at_bucket.tag_ahead(b - 1, "zzz"));
    }

    #[test]
    fn members_split_into_id_and_record() {
        let m = format!("{}{}", "a".repeat(ID_RANDOM_LEN), "b".repeat(TH_LEN));
        assert_eq!(
            split_member(&m),
            Some((
                "a".repeat(ID_RANDOM_LEN).as_str(),
                "b".repeat(TH_LEN).as_str()
            ))
        );
        assert_eq!(split_member("short"), None);
    }
}
