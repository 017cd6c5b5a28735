//! The sessions this site signed out from another device, remembered for a
//! while, so that the signed-out device's next request can be told why it
//! must sign in again ("You were signed out from another device") rather
//! than just "your session ended".

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use sessiond_axum::SessionId;

/// How long a sign-out is remembered.
const KEEP: Duration = Duration::from_secs(30 * 24 * 3600);
/// Most sign-outs remembered (the oldest go first).
const MAX: usize = 100_000;

/// Session ids signed out by their user from another device.
#[derive(Debug, Default)]
pub struct RemoteSignOuts {
    ids: Mutex<HashMap<SessionId, Instant>>,
}

impl RemoteSignOuts {
    /// Remember that `ids` were signed out from another device.
    pub fn record(&self, ids: impl IntoIterator<Item = SessionId>) {
        let now = Instant::now();
        let mut map = self.ids.lock().unwrap_or_else(PoisonError::into_inner);
        map.retain(|_, at| now.duration_since(*at) < KEEP);
        map.extend(ids.into_iter().map(|id| (id, now)));
        while map.len() > MAX {
            let Some(oldest) = map
                .iter()
                .min_by_key(|(_, at)| **at)
                .map(|(id, _)| id.clone())
            else {
                break;
            };
            map.remove(&oldest);
        }
    }

    /// Whether `id` was signed out from another device (forgotten once
    /// asked: the notice is shown once).
    pub fn take(&self, id: &SessionId) -> bool {
        let mut map = self.ids.lock().unwrap_or_else(PoisonError::into_inner);
        map.remove(id)
            .is_some_and(|at| Instant::now().duration_since(at) < KEEP)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sign_out_is_told_once() {
        let remote = RemoteSignOuts::default();
        let id = SessionId::parse(&"A".repeat(33)).unwrap_or_else(|| panic!("an id"));
        assert!(!remote.take(&id));
        remote.record([id.clone()]);
        assert!(remote.take(&id));
        assert!(!remote.take(&id));
    }
}
