//! What keeps password checks cheap to offer: at most a few argon2 hashes at
//! once (each takes ~19 MiB and tens of milliseconds), and a budget of
//! sign-in attempts per account and per client address (with `governor`).

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Keys tracked per limiter before forgiven ones are dropped.
const PRUNE_ABOVE: usize = 10_000;

/// Why a sign-in attempt was not checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// Too many attempts for this account or from this address; retry after.
    TooMany(Duration),
    /// Every hashing slot stayed busy for the whole wait.
    Busy,
}

/// The limits of [`LoginGuard`].
#[derive(Debug, Clone, Copy)]
pub struct LoginLimits {
    /// Password hashes computed at once.
    pub concurrent_hashes: usize,
    /// How long an attempt waits for a hashing slot before it is refused.
    pub queue_wait: Duration,
    /// Attempts per account per minute.
    pub per_account_per_minute: u32,
    /// Attempts per client address per minute.
    pub per_address_per_minute: u32,
}

impl Default for LoginLimits {
    fn default() -> Self {
        Self {
            concurrent_hashes: std::thread::available_parallelism().map_or(2, |n| n.get()),
            queue_wait: Duration::from_secs(2),
            per_account_per_minute: 10,
            per_address_per_minute: 30,
        }
    }
}

/// Admits sign-in attempts: the budgets first (no hash is spent on a refused
/// attempt), then a hashing slot.
pub struct LoginGuard {
    limits: LoginLimits,
    slots: Arc<Semaphore>,
    accounts: DefaultKeyedRateLimiter<String>,
    addresses: DefaultKeyedRateLimiter<IpAddr>,
    hashing: Arc<AtomicUsize>,
    peak: Arc<Mutex<usize>>,
}

/// A hashing slot, held while one password is checked.
pub struct HashSlot {
    _permit: OwnedSemaphorePermit,
    hashing: Arc<AtomicUsize>,
}

impl Drop for HashSlot {
    fn drop(&mut self) {
        self.hashing.fetch_sub(1, Ordering::AcqRel);
    }
}

fn per_minute(n: u32) -> Quota {
    Quota::per_minute(NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN))
}

impl LoginGuard {
    /// A guard with these limits.
    pub fn new(limits: LoginLimits) -> Self {
        Self {
            limits,
            slots: Arc::new(Semaphore::new(limits.concurrent_hashes.max(1))),
            accounts: RateLimiter::keyed(per_minute(limits.per_account_per_minute)),
            addresses: RateLimiter::keyed(per_minute(limits.per_address_per_minute)),
            hashing: Arc::new(AtomicUsize::new(0)),
            peak: Arc::new(Mutex::new(0)),
        }
    }

    /// Admit an attempt to sign in as `account` from `address`: a slot to
    /// hash in, or why not.
    pub async fn admit(&self, account: &str, address: IpAddr) -> Result<HashSlot, Refused> {
        let now = DefaultClock::default().now();
        for limiter_len in [self.accounts.len(), self.addresses.len()] {
            if limiter_len > PRUNE_ABOVE {
                self.accounts.retain_recent();
                self.addresses.retain_recent();
            }
        }
        self.addresses
            .check_key(&address)
            .map_err(|n| Refused::TooMany(n.wait_time_from(now)))?;
        // Names are bounded so the map is too.
        let account: String = account.chars().take(64).collect();
        self.accounts
            .check_key(&account)
            .map_err(|n| Refused::TooMany(n.wait_time_from(now)))?;
        let permit =
            tokio::time::timeout(self.limits.queue_wait, self.slots.clone().acquire_owned())
                .await
                .map_err(|_| Refused::Busy)?
                .map_err(|_| Refused::Busy)?;
        let now_hashing = self.hashing.fetch_add(1, Ordering::AcqRel) + 1;
        let mut peak = self.peak.lock().unwrap_or_else(PoisonError::into_inner);
        *peak = (*peak).max(now_hashing);
        Ok(HashSlot {
            _permit: permit,
            hashing: self.hashing.clone(),
        })
    }

    /// The most hashes that ran at once so far.
    pub fn peak_concurrent_hashes(&self) -> usize {
        *self.peak.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn budgets_per_account_and_per_address() {
        let guard = LoginGuard::new(LoginLimits {
            concurrent_hashes: 1,
            queue_wait: Duration::from_millis(50),
            per_account_per_minute: 3,
            per_address_per_minute: 5,
        });
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        for _ in 0..3 {
            drop(guard.admit("alice", a).await.unwrap());
        }
        assert!(matches!(
            guard.admit("alice", b).await,
            Err(Refused::TooMany(_))
        ));
        // Address a has used 3 of 5 (and the refused attempt from b did not
        // count against a).
        drop(guard.admit("bob", a).await.unwrap());
        drop(guard.admit("carol", a).await.unwrap());
        assert!(matches!(
            guard.admit("dave", a).await,
            Err(Refused::TooMany(_))
        ));
        // One slot: a second attempt waits, then is refused as busy.
        let held = guard.admit("erin", b).await.unwrap();
        assert_eq!(guard.admit("frank", b).await.err(), Some(Refused::Busy));
        drop(held);
        assert_eq!(guard.peak_concurrent_hashes(), 1);
    }
}
