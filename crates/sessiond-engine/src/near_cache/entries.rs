//! [`NearCache`]: the cached records, bounded by count and bytes with LRU
//! eviction, and the state of the invalidation channel that keeps them
//! honest.
//!
//! Three rules make a cached record safe to serve:
//! - a hit is served only while the channel is up *and* has proven itself
//!   within [`NearCache::LEASE`] (the store confirms it every
//!   [`NearCache::CONFIRM_INTERVAL`] with a round trip on the channel, so
//!   every change reported before that round trip has been applied);
//! - losing the channel drops every record before it reports "down", and
//!   nothing is filled again until it is back;
//! - a read that raced a change is never filled: a fill presents the
//!   [`Ticket`] taken before its read, and any invalidation of the same key
//!   (or any flush, or any local write by id) since then voids it.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use lru::LruCache;

use crate::id::SessionId;
use crate::session::{Session, data_size};

/// Bounds of a [`NearCache`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CacheOptions {
    /// Most records kept (default 100,000).
    pub max_entries: usize,
    /// Most bytes kept, as estimated per record (default 64 MiB).
    pub max_bytes: usize,
}

impl Default for CacheOptions {
    fn default() -> Self {
        Self {
            max_entries: 100_000,
            max_bytes: 64 << 20,
        }
    }
}

/// Counters of a [`NearCache`] since it was made.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Lookups served from memory.
    pub hits: u64,
    /// Lookups that went to the store (absent, or the channel not proven).
    pub misses: u64,
    /// Records dropped because the store reported (or this process made) a
    /// change to them.
    pub invalidations: u64,
    /// Times the whole cache was dropped (channel lost, or the store said so).
    pub flushes: u64,
    /// Records held now.
    pub entries: u64,
    /// Estimated bytes held now.
    pub bytes: u64,
}

/// Proof that no change to a key was reported between taking it and filling
/// the key: take it before the read whose result is filled.
#[derive(Clone, Copy, Debug)]
pub struct Ticket {
    epoch: u64,
    slot: usize,
    generation: u64,
}

/// Number of generation counters keys are spread over. A change to any key
/// of a slot voids tickets of the whole slot: rare and harmless (a fill
/// skipped).
const SLOTS: usize = 4096;

/// Fixed cost counted per record besides its variable parts.
const ENTRY_OVERHEAD: usize = 256;

/// Cached session records, keyed by the store's name for a token's record.
#[derive(Debug)]
pub struct NearCache {
    options: CacheOptions,
    started: Instant,
    /// Whether the invalidation channel is established.
    up: AtomicBool,
    /// When (µs after `started`) the channel last proved itself.
    confirmed_us: AtomicU64,
    /// Bumped by every flush and every local write by id: voids all tickets.
    epoch: AtomicU64,
    /// Bumped by every invalidation of a key of the slot.
    generations: Box<[AtomicU64]>,
    hasher: RandomState,
    entries: Mutex<Entries>,
    hits: AtomicU64,
    misses: AtomicU64,
    invalidations: AtomicU64,
    flushes: AtomicU64,
}

#[derive(Debug)]
struct Entries {
    records: LruCache<Box<[u8]>, Entry>,
    by_id: HashMap<SessionId, Box<[u8]>>,
    bytes: usize,
}

#[derive(Debug)]
struct Entry {
    session: Session,
    bytes: usize,
}

impl NearCache {
    /// How long a confirmation of the channel lets hits be served.
    pub const LEASE: Duration = Duration::from_millis(500);
    /// How often a store confirms its channel.
    pub const CONFIRM_INTERVAL: Duration = Duration::from_millis(100);

    /// An empty cache whose channel is down.
    pub fn new(options: CacheOptions) -> Self {
        Self {
            options,
            started: Instant::now(),
            up: AtomicBool::new(false),
            confirmed_us: AtomicU64::new(0),
            epoch: AtomicU64::new(0),
            generations: (0..SLOTS).map(|_| AtomicU64::new(0)).collect(),
            hasher: RandomState::new(),
            entries: Mutex::new(Entries {
                records: LruCache::unbounded(),
                by_id: HashMap::new(),
                bytes: 0,
            }),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            invalidations: AtomicU64::new(0),
            flushes: AtomicU64::new(0),
        }
    }

    /// The bounds.
    pub fn options(&self) -> CacheOptions {
        self.options
    }

    // ---- the channel (called by the store that feeds the cache) ----

    /// The channel is established (again): fills are accepted from now on,
    /// hits are served while confirmations keep coming. `confirmed` is when
    /// the round trip that proved it was sent.
    pub fn channel_up(&self, confirmed: Instant) {
        self.confirm(confirmed);
        self.up.store(true, Ordering::SeqCst);
    }

    /// A round trip sent at `sent` came back over the channel: every change
    /// the store reported before it has been applied.
    pub fn confirm(&self, sent: Instant) {
        let us = self.micros(sent);
        self.confirmed_us.fetch_max(us, Ordering::SeqCst);
    }

    /// The channel is gone (or cannot be trusted): drop everything before
    /// any further hit; no fills until [`NearCache::channel_up`].
    pub fn channel_lost(&self) {
        // Under the lock, so no lookup sees "up" with records about to go.
        let mut entries = self.lock();
        let was_up = self.up.swap(false, Ordering::SeqCst);
        self.epoch.fetch_add(1, Ordering::SeqCst);
        entries.clear();
        if was_up {
            self.flushes.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The store reported that everything may have changed (e.g. a database
    /// flush): drop every record.
    pub fn flush(&self) {
        let mut entries = self.lock();
        self.epoch.fetch_add(1, Ordering::SeqCst);
        entries.clear();
        self.flushes.fetch_add(1, Ordering::Relaxed);
    }

    /// The store reported a change to the record named `key`.
    pub fn invalidate_key(&self, key: &[u8]) {
        self.generations[self.slot(key)].fetch_add(1, Ordering::SeqCst);
        let mut entries = self.lock();
        if let Some(entry) = entries.records.pop(key) {
            entries.forget(&entry);
            self.invalidations.fetch_add(1, Ordering::Relaxed);
        }
    }

    // ---- lookups and fills (called by the caching store) ----

    /// Whether hits may be served now.
    pub fn serving(&self) -> bool {
        if !self.up.load(Ordering::SeqCst) {
            return false;
        }
        let confirmed = self.confirmed_us.load(Ordering::SeqCst);
        let lease = u64::try_from(Self::LEASE.as_micros()).unwrap_or(u64::MAX);
        self.micros(Instant::now()).saturating_sub(confirmed) <= lease
    }

    /// The cached record named `key`, if hits may be served now.
    pub fn get(&self, key: &[u8]) -> Option<Session> {
        let found = {
            // Checked under the lock: a lost channel clears under it too.
            let mut entries = self.lock();
            if self.serving() {
                entries.records.get(key).map(|e| e.session.clone())
            } else {
                None
            }
        };
        let counter = if found.is_some() {
            &self.hits
        } else {
            &self.misses
        };
        counter.fetch_add(1, Ordering::Relaxed);
        found
    }

    /// A lookup that did not consult the cache (the channel could not vouch
    /// for it): counted as a miss.
    pub fn pass(&self) {
        self.misses.fetch_add(1, Ordering::Relaxed);
    }

    /// A ticket to fill `key` with what a read started after this call
    /// returns; `None` while the channel is down.
    pub fn ticket(&self, key: &[u8]) -> Option<Ticket> {
        if !self.up.load(Ordering::SeqCst) {
            return None;
        }
        let slot = self.slot(key);
        Some(Ticket {
            epoch: self.epoch.load(Ordering::SeqCst),
            slot,
            generation: self.generations[slot].load(Ordering::SeqCst),
        })
    }

    /// Keep `session` as the record named `key`, unless anything voided
    /// `ticket` since it was taken. Evicts the least recently used records
    /// beyond the bounds.
    pub fn fill(&self, ticket: Ticket, key: &[u8], session: &Session) {
        let bytes = ENTRY_OVERHEAD + key.len() + session_bytes(session);
        if bytes > self.options.max_bytes || self.options.max_entries == 0 {
            return;
        }
        let mut entries = self.lock();
        // Checked under the lock: invalidations bump first, then take it.
        let valid = self.up.load(Ordering::SeqCst)
            && self.epoch.load(Ordering::SeqCst) == ticket.epoch
            && self.generations[ticket.slot].load(Ordering::SeqCst) == ticket.generation;
        if !valid {
            return;
        }
        // A record under another key for the same session is an old token's.
        if let Some(old_key) = entries.by_id.get(&session.id).cloned()
            && *old_key != *key
            && let Some(old) = entries.records.pop(&old_key)
        {
            entries.forget(&old);
        }
        let entry = Entry {
            session: session.clone(),
            bytes,
        };
        entries.bytes += bytes;
        entries.by_id.insert(session.id.clone(), key.into());
        if let Some(replaced) = entries.records.put(key.into(), entry) {
            entries.bytes -= replaced.bytes;
        }
        while entries.records.len() > self.options.max_entries
            || entries.bytes > self.options.max_bytes
        {
            let Some((_, evicted)) = entries.records.pop_lru() else {
                break;
            };
            entries.forget(&evicted);
        }
    }

    /// This process changed (or may have changed) session `id`: drop its
    /// record and void every ticket taken before.
    pub fn invalidate_session(&self, id: &SessionId) {
        self.epoch.fetch_add(1, Ordering::SeqCst);
        let mut entries = self.lock();
        if let Some(key) = entries.by_id.remove(id)
            && let Some(entry) = entries.records.pop(&key)
        {
            entries.bytes -= entry.bytes;
            self.invalidations.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The counters and the current size.
    pub fn stats(&self) -> CacheStats {
        let (entries, bytes) = {
            let e = self.lock();
            (e.records.len(), e.bytes)
        };
        CacheStats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            invalidations: self.invalidations.load(Ordering::Relaxed),
            flushes: self.flushes.load(Ordering::Relaxed),
            entries: entries as u64,
            bytes: bytes as u64,
        }
    }

    fn slot(&self, key: &[u8]) -> usize {
        (self.hasher.hash_one(key) as usize) % SLOTS
    }

    fn micros(&self, at: Instant) -> u64 {
        let us = at.saturating_duration_since(self.started).as_micros();
        u64::try_from(us).unwrap_or(u64::MAX)
    }

    fn lock(&self) -> MutexGuard<'_, Entries> {
        // The entries stay consistent at every step: a panic elsewhere
        // cannot leave them half-changed.
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Entries {
    fn clear(&mut self) {
        self.records.clear();
        self.by_id.clear();
        self.bytes = 0;
    }

    /// Account for `entry`, already taken out of `records`.
    fn forget(&mut self, entry: &Entry) {
        self.bytes -= entry.bytes;
        self.by_id.remove(&entry.session.id);
    }
}

/// Estimated heap bytes of a cached session's variable parts.
fn session_bytes(s: &Session) -> usize {
    let opt = |o: &Option<String>| o.as_ref().map_or(0, String::len);
    s.user_id.len()
        + opt(&s.role)
        + 2 * data_size(&s.data)
        + opt(&s.device.user_agent)
        + opt(&s.device.ip)
        + opt(&s.device.os)
        + opt(&s.device.browser)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::Timestamp;
    use crate::device::Device;
    use crate::id::ShardTag;
    use crate::session::Mode;

    fn session(user: &str) -> Session {
        Session {
            id: SessionId::generate(&ShardTag::of_user(user)),
            user_id: user.to_owned(),
            role: None,
            data: Default::default(),
            device: Device::default(),
            created_at: Timestamp::from_millis(0),
            last_seen_at: Timestamp::from_millis(0),
            expires_at: Timestamp::from_millis(10_000),
            absolute_expires_at: Timestamp::from_millis(20_000),
            idle_ttl_ms: 10_000,
            mode: Mode::Opaque,
            auth: crate::AuthContext::at(Timestamp::from_millis(0)),
        }
    }

    fn up(options: CacheOptions) -> NearCache {
        let cache = NearCache::new(options);
        cache.channel_up(Instant::now());
        cache
    }

    fn fill(cache: &NearCache, key: &[u8], s: &Session) {
        let ticket = cache.ticket(key).unwrap();
        cache.fill(ticket, key, s);
    }

    #[test]
    fn nothing_is_served_or_filled_while_the_channel_is_down() {
        let cache = NearCache::new(CacheOptions::default());
        assert!(cache.ticket(b"k").is_none());
        assert!(cache.get(b"k").is_none());
        cache.channel_up(Instant::now());
        let s = session("u");
        fill(&cache, b"k", &s);
        assert_eq!(cache.get(b"k"), Some(s.clone()));
        cache.channel_lost();
        assert!(cache.get(b"k").is_none());
        // Back up: the old record is gone, not resurrected.
        cache.channel_up(Instant::now());
        assert!(cache.get(b"k").is_none());
        let stats = cache.stats();
        assert_eq!((stats.hits, stats.flushes, stats.entries), (1, 1, 0));
    }

    #[test]
    fn a_ticket_taken_before_a_change_never_fills() {
        let cache = up(CacheOptions::default());
        let s = session("u");
        // A change reported for the key.
        let t = cache.ticket(b"k").unwrap();
        cache.invalidate_key(b"k");
        cache.fill(t, b"k", &s);
        assert!(cache.get(b"k").is_none());
        // A local write by id.
        let t = cache.ticket(b"k").unwrap();
        cache.invalidate_session(&s.id);
        cache.fill(t, b"k", &s);
        assert!(cache.get(b"k").is_none());
        // A flush, and a lost channel.
        let t = cache.ticket(b"k").unwrap();
        cache.flush();
        cache.fill(t, b"k", &s);
        assert!(cache.get(b"k").is_none());
        let t = cache.ticket(b"k").unwrap();
        cache.channel_lost();
        cache.channel_up(Instant::now());
        cache.fill(t, b"k", &s);
        assert!(cache.get(b"k").is_none());
        // A change to another key of another slot does not void it.
        let t = cache.ticket(b"k").unwrap();
        let other = (0..)
            .map(|i: u32| format!("other{i}"))
            .find(|o| cache.slot(o.as_bytes()) != cache.slot(b"k"))
            .unwrap();
        cache.invalidate_key(other.as_bytes());
        cache.fill(t, b"k", &s);
        assert_eq!(cache.get(b"k"), Some(s));
    }

    #[test]
    fn invalidation_by_key_and_by_id_drop_the_record() {
        let cache = up(CacheOptions::default());
        let (a, b) = (session("a"), session("b"));
        fill(&cache, b"ka", &a);
        fill(&cache, b"kb", &b);
        cache.invalidate_key(b"ka");
        cache.invalidate_session(&b.id);
        assert!(cache.get(b"ka").is_none() && cache.get(b"kb").is_none());
        let stats = cache.stats();
        assert_eq!((stats.invalidations, stats.entries, stats.bytes), (2, 0, 0));
    }

    #[test]
    fn a_new_key_for_a_session_replaces_its_old_one() {
        let cache = up(CacheOptions::default());
        let s = session("u");
        fill(&cache, b"old", &s);
        fill(&cache, b"new", &s);
        assert!(cache.get(b"old").is_none());
        assert_eq!(cache.get(b"new"), Some(s.clone()));
        cache.invalidate_session(&s.id);
        assert!(cache.get(b"new").is_none());
    }

    #[test]
    fn bounded_by_entries_and_bytes_least_recently_used_first() {
        let cache = up(CacheOptions {
            max_entries: 3,
            max_bytes: usize::MAX,
        });
        let sessions: Vec<Session> = (0..4).map(|i| session(&format!("u{i}"))).collect();
        for (i, s) in sessions.iter().take(3).enumerate() {
            fill(&cache, format!("k{i}").as_bytes(), s);
        }
        assert!(cache.get(b"k0").is_some()); // k1 is now the oldest
        fill(&cache, b"k3", &sessions[3]);
        assert!(cache.get(b"k1").is_none());
        assert!(cache.get(b"k0").is_some() && cache.get(b"k3").is_some());
        assert_eq!(cache.stats().entries, 3);

        let one = ENTRY_OVERHEAD + 2 + session_bytes(&sessions[0]);
        let cache = up(CacheOptions {
            max_entries: 100,
            max_bytes: 2 * one + 10,
        });
        for (i, s) in sessions.iter().enumerate() {
            fill(&cache, format!("k{i}").as_bytes(), s);
        }
        let stats = cache.stats();
        assert_eq!(stats.entries, 2);
        assert!(stats.bytes <= (2 * one + 10) as u64);
        assert!(cache.get(b"k3").is_some() && cache.get(b"k0").is_none());
    }

    #[test]
    fn hits_need_a_recent_confirmation() {
        let mut cache = NearCache::new(CacheOptions::default());
        // As if made a while ago, so a confirmation can be older than the lease.
        cache.started = Instant::now()
            .checked_sub(NearCache::LEASE * 4)
            .expect("the monotonic clock has run for a while");
        cache.channel_up(cache.started);
        let s = session("u");
        fill(&cache, b"k", &s);
        // Up, but not confirmed within the lease (a stalled channel).
        assert!(!cache.serving());
        assert!(cache.get(b"k").is_none());
        cache.confirm(Instant::now());
        assert!(cache.serving());
        assert_eq!(cache.get(b"k"), Some(s));
    }
}
