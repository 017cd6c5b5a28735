//! TLS to PostgreSQL as libpq users expect `sslmode`: `verify-full` checks
//! the chain and the name, `verify-ca` the chain only, `require` encrypts
//! without checking, `disable` does not encrypt; a wrong root is refused.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use sessiond_engine::{Store, Timestamp};
use sessiond_postgres::{PostgresOptions, PostgresStore};
use sessiond_testkit::postgres_server::PostgresServer;

/// Whether every connection of the store (application `name`) is encrypted.
fn encrypted(server: &PostgresServer, name: &str) -> String {
    server
        .sql(&format!(
            "SELECT bool_and(s.ssl) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid)
             WHERE a.application_name = '{name}'"
        ))
        .unwrap()
}

async fn open(url: &str) -> Result<PostgresStore, sessiond_engine::StoreError> {
    PostgresStore::connect(url, PostgresOptions::default()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sslmode_is_honoured() {
    let server = tokio::task::spawn_blocking(PostgresServer::start_tls)
        .await
        .unwrap();
    let ca = server.ca_file().display().to_string();
    let base = |host: &str, name: &str| {
        format!(
            "postgres://postgres@{host}:{}/postgres?application_name={name}",
            server.port()
        )
        .replace(
            "postgres@",
            &format!(
                "{}@",
                server
                    .url()
                    .split("//")
                    .nth(1)
                    .unwrap()
                    .split('@')
                    .next()
                    .unwrap()
            ),
        )
    };
    for (name, url) in [
        (
            "full",
            format!(
                "{}&sslmode=verify-full&sslrootcert={ca}",
                base("localhost", "full")
            ),
        ),
        (
            "full_ip",
            format!(
                "{}&sslmode=verify-full&sslrootcert={ca}",
                base("127.0.0.1", "full_ip")
            ),
        ),
        (
            "chain",
            format!(
                "{}&sslmode=verify-ca&sslrootcert={ca}",
                base("127.0.0.1", "chain")
            ),
        ),
        (
            "require",
            format!("{}&sslmode=require", base("127.0.0.1", "require")),
        ),
    ] {
        let store = open(&url).await.unwrap_or_else(|e| panic!("{name}: {e}"));
        store.ping().await.unwrap();
        store.count_live(Timestamp::from_millis(0)).await.unwrap();
        assert_eq!(encrypted(&server, name), "t", "{name}");
        drop(store);
    }
    let store = open(&format!("{}&sslmode=disable", base("127.0.0.1", "plain")))
        .await
        .unwrap();
    store.ping().await.unwrap();
    assert_eq!(encrypted(&server, "plain"), "f");

    // A root that did not sign the server's certificate.
    let other = tokio::task::spawn_blocking(PostgresServer::start_tls)
        .await
        .unwrap();
    let wrong = other.ca_file().display().to_string();
    for mode in ["verify-full", "verify-ca"] {
        let url = format!(
            "{}&sslmode={mode}&sslrootcert={wrong}",
            base("localhost", "wrong")
        );
        let err = open(&url).await.unwrap_err();
        assert!(err.to_string().contains("postgres"), "{mode}: {err}");
    }
}
