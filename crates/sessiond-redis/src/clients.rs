//! redis-rs clients from URLs, with the store's TLS settings: the system's
//! roots, or the CA certificates of `store_ca_file`.

use redis::RedisResult;

/// A client for `url`; TLS settings apply to `rediss://` only (the system's
/// roots, or `tls_ca_pem`).
pub(crate) fn client_for(url: &str, tls_ca_pem: Option<&[u8]>) -> RedisResult<redis::Client> {
    let is_tls = url
        .get(..9)
        .is_some_and(|scheme| scheme.eq_ignore_ascii_case("rediss://"));
    if !is_tls {
        return redis::Client::open(url);
    }
    // The crypto provider of the TLS stack; an error only means one is
    // installed already.
    let _ = rustls::crypto::ring::default_provider().install_default();
    match tls_ca_pem {
        None => redis::Client::open(url),
        Some(pem) => redis::Client::build_with_tls(
            url,
            redis::TlsCertificates {
                client_tls: None,
                root_cert: Some(pem.to_vec()),
            },
        ),
    }
}
