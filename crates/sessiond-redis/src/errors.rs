//! What a redis error means for the store: a failed connection (worth one
//! retry on a fresh one), a corrupt record, or the store being unavailable.

use redis::RedisError;
use sessiond_engine::StoreError;

/// Whether `e` means the connection itself failed (so a retry goes out on a
/// fresh one).
pub(crate) fn is_connection_error(e: &RedisError) -> bool {
    e.is_io_error() || e.is_connection_dropped() || e.is_unrecoverable_error()
}

/// Any redis error as [`StoreError::Unavailable`].
pub(crate) fn unavailable(e: RedisError) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

/// Map a redis error: a record of the wrong type is corrupt; everything else
/// (I/O, timeouts, cluster or replica trouble, a server refusing work) means
/// the store cannot serve the call right now.
pub(crate) fn map_error(e: RedisError) -> StoreError {
    if e.code() == Some("WRONGTYPE") || e.to_string().contains("WRONGTYPE") {
        return StoreError::Corrupt(format!("a key holds the wrong type: {e}"));
    }
    unavailable(e)
}
