//! Throttling of credential guessing: each client (an IPv4 address or an IPv6
//! /64) has a budget of failed credential checks per minute, refilled
//! steadily, kept in a map of bounded size.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Clients tracked at most by [`FailedAuthLimiter::new`].
pub const DEFAULT_MAX_CLIENTS: usize = 100_000;

/// The period the budget is stated over.
const WINDOW: Duration = Duration::from_secs(60);

/// Counts failed credential checks per client and refuses clients over their
/// budget.
///
/// A leaky bucket per client: a client may fail `per_minute` times in a row,
/// then once every `60 s / per_minute`; a minute without failures restores
/// the whole budget. Each client is one timestamp, the moment its failures
/// are forgiven, so an entry whose moment has passed can be dropped.
#[derive(Debug)]
pub struct FailedAuthLimiter {
    per_minute: u32,
    /// Debt one failure adds: `WINDOW / per_minute`.
    cost: Duration,
    max_clients: usize,
    /// Client key → when its debt is paid off.
    clients: Mutex<HashMap<IpAddr, Instant>>,
}

impl FailedAuthLimiter {
    /// A limiter allowing `per_minute` failed checks per client per minute,
    /// tracking at most [`DEFAULT_MAX_CLIENTS`] clients. `0` disables it.
    pub fn new(per_minute: u32) -> Self {
        Self::with_max_clients(per_minute, DEFAULT_MAX_CLIENTS)
    }

    /// As [`new`](Self::new), tracking at most `max_clients` clients (at
    /// least 1); beyond that, clients in good standing are forgotten first,
    /// then those closest to it.
    pub fn with_max_clients(per_minute: u32, max_clients: usize) -> Self {
        Self {
            per_minute,
            cost: WINDOW.checked_div(per_minute).unwrap_or(WINDOW),
            max_clients: max_clients.max(1),
            clients: Mutex::new(HashMap::new()),
        }
    }

    /// `Ok` if `ip` may attempt a credential check now; otherwise how long it
    /// must wait.
    pub fn check(&self, ip: IpAddr) -> Result<(), Duration> {
        self.check_at(ip, Instant::now())
    }

    /// [`check`](Self::check) at `now`.
    pub fn check_at(&self, ip: IpAddr, now: Instant) -> Result<(), Duration> {
        if self.per_minute == 0 {
            return Ok(());
        }
        let clients = self.clients.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(&paid_off) = clients.get(&client_key(ip)) else {
            return Ok(());
        };
        // Room for one more failure within the budget?
        let debt_after = paid_off.saturating_duration_since(now) + self.cost;
        match debt_after.checked_sub(WINDOW) {
            Some(wait) if !wait.is_zero() => Err(wait),
            _ => Ok(()),
        }
    }

    /// Count a failed credential check by `ip`.
    pub fn record_failure(&self, ip: IpAddr) {
        self.record_failure_at(ip, Instant::now());
    }

    /// [`record_failure`](Self::record_failure) at `now`.
    pub fn record_failure_at(&self, ip: IpAddr, now: Instant) {
        if self.per_minute == 0 {
            return;
        }
        let key = client_key(ip);
        let mut clients = self.clients.lock().unwrap_or_else(PoisonError::into_inner);
        if !clients.contains_key(&key) && clients.len() >= self.max_clients {
            self.make_room(&mut clients, now);
        }
        let paid_off = clients.entry(key).or_insert(now);
        let from = (*paid_off).max(now);
        // Failures racing past a refused check add no debt beyond one window.
        let cap = now.checked_add(WINDOW).unwrap_or(from);
        *paid_off = from.checked_add(self.cost).unwrap_or(from).min(cap);
    }

    /// Number of clients currently tracked.
    pub fn tracked_clients(&self) -> usize {
        self.clients
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// Drop clients whose debt is paid off; if still near the bound, drop
    /// the tenth of the map closest to being paid off, so that the scan is
    /// paid for by many inserts.
    fn make_room(&self, clients: &mut HashMap<IpAddr, Instant>, now: Instant) {
        clients.retain(|_, paid_off| *paid_off > now);
        let target = self
            .max_clients
            .saturating_sub((self.max_clients / 10).max(1));
        let excess = clients.len().saturating_sub(target);
        if excess == 0 {
            return;
        }
        let mut by_age: Vec<(Instant, IpAddr)> = clients.iter().map(|(ip, t)| (*t, *ip)).collect();
        by_age.select_nth_unstable(excess - 1);
        for (_, ip) in &by_age[..excess] {
            clients.remove(ip);
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
    use std::net::Ipv4Addr;

    fn v4(last: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(192, 0, 2, last))
    }

    fn fail(limiter: &FailedAuthLimiter, ip: IpAddr, n: u32, now: Instant) {
        for _ in 0..n {
            limiter.record_failure_at(ip, now);
        }
    }

    #[test]
    fn budget_then_refusal_with_retry_after() {
        let limiter = FailedAuthLimiter::new(10);
        let t0 = Instant::now();
        for _ in 0..10 {
            assert_eq!(limiter.check_at(v4(1), t0), Ok(()));
            limiter.record_failure_at(v4(1), t0);
        }
        let wait = limiter.check_at(v4(1), t0).unwrap_err();
        assert_eq!(wait, Duration::from_secs(6));
        // Another client is unaffected.
        assert_eq!(limiter.check_at(v4(2), t0), Ok(()));
        // Refill: one attempt after the wait, not before.
        assert!(
            limiter
                .check_at(v4(1), t0 + wait - Duration::from_millis(1))
                .is_err()
        );
        assert_eq!(limiter.check_at(v4(1), t0 + wait), Ok(()));
        limiter.record_failure_at(v4(1), t0 + wait);
        assert_eq!(
            limiter.check_at(v4(1), t0 + wait),
            Err(Duration::from_secs(6))
        );
    }

    #[test]
    fn a_quiet_minute_restores_the_whole_budget() {
        let limiter = FailedAuthLimiter::new(7);
        let t0 = Instant::now();
        fail(&limiter, v4(1), 7, t0);
        assert!(limiter.check_at(v4(1), t0).is_err());
        let t1 = t0 + WINDOW;
        for _ in 0..7 {
            assert_eq!(limiter.check_at(v4(1), t1), Ok(()));
            limiter.record_failure_at(v4(1), t1);
        }
        assert!(limiter.check_at(v4(1), t1).is_err());
    }

    #[test]
    fn failures_past_refusal_do_not_extend_the_wait_beyond_a_window() {
        let limiter = FailedAuthLimiter::new(2);
        let t0 = Instant::now();
        fail(&limiter, v4(1), 50, t0);
        assert_eq!(limiter.check_at(v4(1), t0), Err(Duration::from_secs(30)));
        assert_eq!(limiter.check_at(v4(1), t0 + WINDOW), Ok(()));
    }

    #[test]
    fn ipv6_clients_are_grouped_by_64() {
        let limiter = FailedAuthLimiter::new(3);
        let t0 = Instant::now();
        let a: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff:ffff:ffff:ffff".parse().unwrap();
        let other: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        fail(&limiter, a, 3, t0);
        assert!(limiter.check_at(b, t0).is_err());
        assert_eq!(limiter.check_at(other, t0), Ok(()));
        // IPv4-mapped addresses count as their IPv4 address.
        let mapped: IpAddr = "::ffff:192.0.2.9".parse().unwrap();
        fail(&limiter, mapped, 3, t0);
        assert!(limiter.check_at(v4(9), t0).is_err());
        assert_eq!(limiter.check_at(v4(10), t0), Ok(()));
    }

    #[test]
    fn zero_disables() {
        let limiter = FailedAuthLimiter::new(0);
        let t0 = Instant::now();
        fail(&limiter, v4(1), 1_000, t0);
        assert_eq!(limiter.check_at(v4(1), t0), Ok(()));
        assert_eq!(limiter.tracked_clients(), 0);
    }

    #[test]
    fn the_map_stays_bounded() {
        let limiter = FailedAuthLimiter::with_max_clients(5, 100);
        let t0 = Instant::now();
        // Stale clients go first.
        for i in 0..100u32 {
            limiter.record_failure_at(IpAddr::V4(Ipv4Addr::from(i)), t0);
        }
        assert_eq!(limiter.tracked_clients(), 100);
        let t1 = t0 + WINDOW;
        limiter.record_failure_at(v4(1), t1);
        assert_eq!(limiter.tracked_clients(), 1);

        // All in debt: those closest to paid off are dropped, never the
        // newest, and the bound holds.
        for i in 0..10_000u32 {
            let ip = IpAddr::V4(Ipv4Addr::from(1_000_000 + i));
            limiter.record_failure_at(ip, t1 + Duration::from_millis(u64::from(i)));
            assert!(limiter.tracked_clients() <= 100);
        }
        let heavy = IpAddr::V4(Ipv4Addr::from(1_000_000 + 9_999));
        fail(&limiter, heavy, 5, t1 + Duration::from_secs(10));
        assert!(
            limiter
                .check_at(heavy, t1 + Duration::from_secs(10))
                .is_err()
        );
        assert!(limiter.tracked_clients() <= 100);
    }
}
