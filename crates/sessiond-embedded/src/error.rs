//! How SQLite failures map onto [`StoreError`]: a damaged file or an
//! undecodable value is `Corrupt`, everything else (I/O, full disk, locks) is
//! `Unavailable` with SQLite's message.

use rusqlite::ErrorCode;
use sessiond_engine::StoreError;

/// The [`StoreError`] for a SQLite failure.
pub(crate) fn from_sqlite(e: rusqlite::Error) -> StoreError {
    match &e {
        rusqlite::Error::SqliteFailure(f, _)
            if matches!(f.code, ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase) =>
        {
            StoreError::Corrupt(format!("sqlite: {e}"))
        }
        rusqlite::Error::FromSqlConversionFailure(..)
        | rusqlite::Error::IntegralValueOutOfRange(..)
        | rusqlite::Error::InvalidColumnType(..) => StoreError::Corrupt(format!("sqlite: {e}")),
        _ => StoreError::Unavailable(format!("sqlite: {e}")),
    }
}

/// The error every call gets once the store is closed.
pub(crate) fn closed() -> StoreError {
    StoreError::Unavailable("the embedded store is closed".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn damage_is_corrupt_and_the_rest_unavailable() {
        let failure = |code| {
            rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error {
                    code,
                    extended_code: 0,
                },
                None,
            )
        };
        assert!(matches!(
            from_sqlite(failure(ErrorCode::DatabaseCorrupt)),
            StoreError::Corrupt(_)
        ));
        assert!(matches!(
            from_sqlite(failure(ErrorCode::NotADatabase)),
            StoreError::Corrupt(_)
        ));
        assert!(matches!(
            from_sqlite(failure(ErrorCode::DiskFull)),
            StoreError::Unavailable(_)
        ));
        assert!(matches!(
            from_sqlite(failure(ErrorCode::SystemIoFailure)),
            StoreError::Unavailable(_)
        ));
        assert!(matches!(
            from_sqlite(rusqlite::Error::IntegralValueOutOfRange(0, -1)),
            StoreError::Corrupt(_)
        ));
    }
}
