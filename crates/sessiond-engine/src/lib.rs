//! The sessiond engine: domain types, token generation and hashing, policies,
//! the [`Store`] contract every backend implements, and the [`Engine`] that
//! validates input and drives a store.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod authentication;
pub mod binding;
pub mod clock;
pub mod device;
pub mod engine;
pub mod error;
pub mod events;
pub mod history;
pub mod id;
pub mod listing;
pub mod near_cache;
pub mod observed;
pub mod policy;
pub mod presence;
pub mod private_files;
pub mod refresh;
pub mod sealed;
pub mod session;
pub mod store;
pub mod token;

pub use authentication::{Aal, AuthContext, AuthRequirement, AuthShortfall, Authentication};
pub use binding::{BindTo, Binding, OnMismatch, Presenter};
pub use clock::{Clock, ManualClock, SystemClock, Timestamp};
pub use device::{Device, DeviceKind};
pub use engine::{
    BindingCheck, CreateRequest, Created, CreatedJwt, Engine, HistoryPage, Refreshed, Rotated,
};
pub use error::{Error, StoreError};
pub use events::{
    Event, EventCursor, EventKind, EventKinds, EventPage, EventQuery, EventRetention, EventsFrom,
};
pub use history::{HistoryEvent, HistoryKind};
pub use id::{SessionId, ShardTag};
pub use listing::{
    KeysetWalk, PageCollector, SessionCursor, SessionFilter, SessionPage, SessionQuery,
};
pub use near_cache::{CacheOptions, CacheSource, CacheStats, CachedStore, NearCache, TrackedRead};
pub use observed::{ObservedStore, Op, Outcome, StoreObserver};
pub use policy::{LimitPolicy, Policy, RolePolicy, effective_touch_interval_ms};
pub use presence::{Beaten, Connection, ConnectionBeat, ConnectionId, DevicePresence, Presence};
pub use refresh::RefreshToken;
pub use sealed::{DataKeys, KeyFileError, SealedStore};
pub use session::{DataUpdate, Mode, RevokeReason, Session, SessionData, TouchRule, data_size};
pub use store::{
    IssuedBefore, NewSession, NodeHealth, RefreshOutcome, RefreshRequest, RefreshState,
    RefreshStep, RotateTarget, Store,
};
pub use token::{SessionToken, TokenDigest, TokenHash, csrf_token_for, csrf_token_matches};
