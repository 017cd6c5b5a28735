//! PostgreSQL and pool failures as [`StoreError`]s: anything that keeps an
//! answer from coming back is `Unavailable` (fail closed); a row that does
//! not decode is `Corrupt`.

use sessiond_engine::StoreError;

/// A failure of the database or of the connection to it.
pub(crate) fn from_pg(e: &tokio_postgres::Error) -> StoreError {
    // The database's own message names the failing condition; it never holds
    // bound parameters (token hashes travel as parameters only).
    let detail = match e.as_db_error() {
        Some(db) => format!("{}: {}", db.code().code(), db.message()),
        None => e.to_string(),
    };
    StoreError::Unavailable(format!("postgres: {detail}"))
}

/// A failure to get a connection from the pool.
pub(crate) fn from_pool(e: &deadpool_postgres::PoolError) -> StoreError {
    match e {
        deadpool_postgres::PoolError::Backend(pg) => from_pg(pg),
        other => StoreError::Unavailable(format!("postgres pool: {other}")),
    }
}

/// Whether a transaction failed only because of a concurrent one (deadlock,
/// serialization) and may simply run again.
pub(crate) fn is_transient(e: &tokio_postgres::Error) -> bool {
    use tokio_postgres::error::SqlState;
    e.code().is_some_and(|c| {
        *c == SqlState::T_R_DEADLOCK_DETECTED || *c == SqlState::T_R_SERIALIZATION_FAILURE
    })
}

/// A stored value that does not decode.
pub(crate) fn corrupt(at: &str, field: &str, why: &str) -> StoreError {
    StoreError::Corrupt(format!("session {at}: bad {field}: {why}"))
}
