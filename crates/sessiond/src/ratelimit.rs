//! Throttling of credential guessing (with `governor`): each client address
//! (an IPv4 address or an IPv6 /64) has a budget of *failed* credential
//! checks per minute. A credential is always checked first and only a
//! failure is counted, so a valid credential is never refused; a failure over
//! the budget is answered 429 instead of 401. Admin API keys and session
//! credentials have separate budgets.

use std::net::{IpAddr, Ipv6Addr};
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use governor::clock::{Clock, DefaultClock, Reference};
use governor::middleware::NoOpMiddleware;
use governor::state::keyed::DashMapStateStore;
use governor::{Quota, RateLimiter};

/// Clients tracked at most per budget by [`FailureBudget::per_minute`].
pub const DEFAULT_MAX_CLIENTS: usize = 100_000;

/// Where clients go while the map is full of clients still in debt: one
/// shared budget, so that a flood of new addresses is throttled as a whole.
const OVERFLOW: IpAddr = IpAddr::V6(Ipv6Addr::UNSPECIFIED);

type Limiter<C> =
    RateLimiter<IpAddr, DashMapStateStore<IpAddr>, C, NoOpMiddleware<<C as Clock>::Instant>>;

/// A budget of failed credential checks per client and minute.
pub struct FailureBudget<C: Clock = DefaultClock> {
    /// `None`: the limit is off.
    limiter: Option<Limiter<C>>,
    clock: C,
    max_clients: usize,
    /// Nanoseconds (of `clock`, since `origin`) of the last pruning pass.
    last_prune: AtomicU64,
    origin: C::Instant,
}

impl<C: Clock> std::fmt::Debug for FailureBudget<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FailureBudget")
            .field("on", &self.limiter.is_some())
            .field("max_clients", &self.max_clients)
            .finish_non_exhaustive()
    }
}

impl FailureBudget {
    /// `per_minute` failures per client and minute, refilled steadily;
    /// `0` turns the limit off.
    pub fn per_minute(per_minute: u32) -> Self {
        Self::with_clock(per_minute, DEFAULT_MAX_CLIENTS, DefaultClock::default())
    }
}

impl<C: Clock + Clone> FailureBudget<C> {
    /// As [`FailureBudget::per_minute`], tracking at most `max_clients`
    /// clients, on `clock`.
    pub fn with_clock(per_minute: u32, max_clients: usize, clock: C) -> Self {
        let limiter = NonZeroU32::new(per_minute)
            .map(|n| RateLimiter::dashmap_with_clock(Quota::per_minute(n), clock.clone()));
        Self {
            limiter,
            origin: clock.now(),
            clock,
            max_clients: max_clients.max(1),
            last_prune: AtomicU64::new(0),
        }
    }

    /// Whether the limit is on.
    pub fn is_on(&self) -> bool {
        self.limiter.is_some()
    }

    /// Count a failed credential check by `ip`: `Ok` while the client is
    /// within its budget (answer 401), otherwise how long it must wait
    /// (answer 429).
    pub fn record_failure(&self, ip: IpAddr) -> Result<(), Duration> {
        let Some(limiter) = &self.limiter else {
            return Ok(());
        };
        let mut key = client_key(ip);
        if limiter.len() >= self.max_clients {
            self.prune(limiter);
            if limiter.len() >= self.max_clients {
                key = OVERFLOW;
            }
        }
        limiter
            .check_key(&key)
            .map_err(|not_until| not_until.wait_time_from(self.clock.now()))
    }

    /// Number of clients currently tracked.
    pub fn tracked_clients(&self) -> usize {
        self.limiter.as_ref().map_or(0, |l| l.len())
    }

    /// Drop clients whose failures are forgiven, at most once a second (the
    /// scan is paid for by the inserts in between).
    fn prune(&self, limiter: &Limiter<C>) {
        let now = u64::from(self.clock.now().duration_since(self.origin));
        let last = self.last_prune.load(Ordering::Relaxed);
        let second = 1_000_000_000;
        if now.saturating_sub(last) < second && last != 0 {
            return;
        }
        if self
            .last_prune
            .compare_exchange(last, now.max(1), Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
        {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
    }
}

/// The two budgets of the server.
#[derive(Debug)]
pub struct FailedAuthLimiter {
    /// Wrong admin API keys.
    pub admin: FailureBudget,
    /// Invalid session tokens, access tokens and refresh tokens.
    pub credentials: FailureBudget,
}

impl FailedAuthLimiter {
    /// `per_minute` failures per client and minute in each budget; `0` turns
    /// both off.
    pub fn per_minute(per_minute: u32) -> Self {
        Self {
            admin: FailureBudget::per_minute(per_minute),
            credentials: FailureBudget::per_minute(per_minute),
        }
    }
}

/// The key a client is counted under: an IPv4 address (IPv4-mapped IPv6
/// included) as is, an IPv6 address by its /64 prefix.
fn client_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let prefix = u128::from(v6) & !u128::from(u64::MAX);
            IpAddr::V6(Ipv6Addr::from(prefix))
        }
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use governor::clock::FakeRelativeClock;
    use std::net::Ipv4Addr;

    fn v4(last: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(192, 0, 2, last))
    }

    fn budget(
        per_minute: u32,
        max_clients: usize,
    ) -> (FailureBudget<FakeRelativeClock>, FakeRelativeClock) {
        let clock = FakeRelativeClock::default();
        (
            FailureBudget::with_clock(per_minute, max_clients, clock.clone()),
            clock,
        )
    }

    #[test]
    fn budget_then_refusal_with_a_wait() {
        let (b, clock) = budget(10, 100);
        for _ in 0..10 {
            assert_eq!(b.record_failure(v4(1)), Ok(()));
        }
        let wait = b.record_failure(v4(1)).unwrap_err();
        assert_eq!(wait, Duration::from_secs(6));
        // Another client is unaffected.
        assert_eq!(b.record_failure(v4(2)), Ok(()));
        // Refill: one more failure after the wait, not before.
        clock.advance(wait - Duration::from_millis(1));
        assert!(b.record_failure(v4(1)).is_err());
        clock.advance(Duration::from_millis(1));
        assert_eq!(b.record_failure(v4(1)), Ok(()));
        assert_eq!(b.record_failure(v4(1)), Err(Duration::from_secs(6)));
    }

    #[test]
    fn a_quiet_minute_restores_the_whole_budget() {
        let (b, clock) = budget(7, 100);
        for _ in 0..7 {
            b.record_failure(v4(1)).unwrap();
        }
        assert!(b.record_failure(v4(1)).is_err());
        clock.advance(Duration::from_secs(60));
        for _ in 0..7 {
            assert_eq!(b.record_failure(v4(1)), Ok(()));
        }
        assert!(b.record_failure(v4(1)).is_err());
    }

    #[test]
    fn refused_failures_do_not_extend_the_wait() {
        let (b, clock) = budget(2, 100);
        for _ in 0..50 {
            let _ = b.record_failure(v4(1));
        }
        assert_eq!(b.record_failure(v4(1)), Err(Duration::from_secs(30)));
        clock.advance(Duration::from_secs(30));
        assert_eq!(b.record_failure(v4(1)), Ok(()));
    }

    #[test]
    fn ipv6_clients_are_grouped_by_64() {
        let (b, _) = budget(3, 100);
        let a: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let same: IpAddr = "2001:db8:1:2:ffff:ffff:ffff:ffff".parse().unwrap();
        let other: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        for _ in 0..3 {
            b.record_failure(a).unwrap();
        }
        assert!(b.record_failure(same).is_err());
        assert_eq!(b.record_failure(other), Ok(()));
        // IPv4-mapped addresses count as their IPv4 address.
        let mapped: IpAddr = "::ffff:192.0.2.9".parse().unwrap();
        for _ in 0..3 {
            b.record_failure(mapped).unwrap();
        }
        assert!(b.record_failure(v4(9)).is_err());
    }

    #[test]
    fn zero_turns_it_off() {
        let (b, _) = budget(0, 100);
        assert!(!b.is_on());
        for _ in 0..1_000 {
            assert_eq!(b.record_failure(v4(1)), Ok(()));
        }
        assert_eq!(b.tracked_clients(), 0);
    }

    #[test]
    fn the_map_stays_bounded() {
        let (b, clock) = budget(5, 100);
        for i in 0..100u32 {
            b.record_failure(IpAddr::V4(Ipv4Addr::from(i))).unwrap();
        }
        assert_eq!(b.tracked_clients(), 100);
        // Forgiven clients are dropped to make room.
        clock.advance(Duration::from_secs(61));
        b.record_failure(v4(1)).unwrap();
        assert!(b.tracked_clients() <= 2, "{}", b.tracked_clients());
        // A flood of new addresses in debt: the map stays bounded and the
        // newcomers share one budget.
        for i in 0..10_000u32 {
            let _ = b.record_failure(IpAddr::V4(Ipv4Addr::from(1_000_000 + i)));
            assert!(b.tracked_clients() <= 101);
        }
        assert!(
            b.record_failure(IpAddr::V4(Ipv4Addr::from(7_000_000)))
                .is_err()
        );
    }
}
