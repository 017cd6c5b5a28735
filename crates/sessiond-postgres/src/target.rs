//! What a `postgres://` URL names: the connection settings for
//! tokio-postgres and the TLS behaviour of its `sslmode`, read as libpq
//! users expect (`disable`, `allow`/`prefer`, `require`, `verify-ca`,
//! `verify-full`, with `sslrootcert`).

use std::sync::Arc;
use std::time::Duration;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};
use sessiond_engine::StoreError;
use tokio_postgres::config::SslMode;
use tokio_postgres_rustls::MakeRustlsConnect;

/// How the server's certificate is checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Verify {
    /// Not at all (`prefer`, `require` without a root certificate): the
    /// connection is encrypted, as libpq does for these modes.
    Nothing,
    /// Its chain against the root certificates, not its name (`verify-ca`,
    /// or `require` with a root certificate, as libpq).
    Chain,
    /// Its chain and that it names the host (`verify-full`).
    Full,
}

/// A parsed store URL.
pub(crate) struct Target {
    /// Connection settings (timeouts and keepalives set).
    pub config: tokio_postgres::Config,
    /// TLS connector for every connection.
    pub tls: MakeRustlsConnect,
}

/// A store URL split into tokio-postgres settings and the TLS parameters
/// read here.
struct Parts {
    config: tokio_postgres::Config,
    sslmode: Option<String>,
    rootcert: Option<String>,
}

fn parts(url: &str) -> Result<Parts, String> {
    let lower = url.to_ascii_lowercase();
    if !lower.starts_with("postgres://") && !lower.starts_with("postgresql://") {
        return Err("expected postgres://USER@HOST:PORT/DATABASE".to_owned());
    }
    let (base, query) = url.split_once('?').unwrap_or((url, ""));
    let mut kept = Vec::new();
    let mut sslmode = None;
    let mut rootcert = None;
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        match key {
            "sslmode" => sslmode = Some(value.to_owned()),
            "sslrootcert" => rootcert = Some(value.to_owned()),
            _ => kept.push(pair),
        }
    }
    let rebuilt = if kept.is_empty() {
        base.to_owned()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    let config = rebuilt
        .parse()
        .map_err(|e| format!("not a PostgreSQL URL: {e}"))?;
    mode(sslmode.as_deref(), true)?;
    Ok(Parts {
        config,
        sslmode,
        rootcert,
    })
}

/// Check a store URL without connecting or reading files: the error says
/// what is wrong with it.
pub fn check_url(url: &str) -> Result<(), String> {
    parts(url).map(drop)
}

/// Parse `url`. `ca_pem` (the `store_ca_file`) stands in for `sslrootcert`
/// when the URL has none.
pub(crate) fn parse(
    url: &str,
    ca_pem: Option<&[u8]>,
    timeout: Duration,
) -> Result<Target, StoreError> {
    let bad = |why: String| StoreError::Unavailable(format!("store URL: {why}"));
    let Parts {
        mut config,
        sslmode,
        rootcert,
    } = parts(url).map_err(bad)?;
    let roots = match rootcert {
        Some(path) => Some(
            std::fs::read(&path)
                .map_err(|e| bad(format!("cannot read sslrootcert {path}: {e}")))?,
        ),
        None => ca_pem.map(<[u8]>::to_vec),
    };
    let (mode, verify) = mode(sslmode.as_deref(), roots.is_some()).map_err(bad)?;
    config
        .ssl_mode(mode)
        .connect_timeout(timeout)
        .keepalives(true)
        .keepalives_idle(Duration::from_secs(30));
    if config.get_application_name().is_none() {
        config.application_name("sessiond");
    }
    let tls = connector(verify, roots.as_deref())?;
    Ok(Target { config, tls })
}

/// The TLS mode and certificate check of `sslmode` (default `prefer`), as
/// libpq reads it, given whether root certificates were named.
fn mode(sslmode: Option<&str>, has_roots: bool) -> Result<(SslMode, Verify), String> {
    let chosen = match sslmode.unwrap_or("prefer") {
        "disable" => (SslMode::Disable, Verify::Nothing),
        "allow" | "prefer" => (SslMode::Prefer, Verify::Nothing),
        "require" if has_roots => (SslMode::Require, Verify::Chain),
        "require" => (SslMode::Require, Verify::Nothing),
        "verify-ca" => (SslMode::Require, Verify::Chain),
        "verify-full" => (SslMode::Require, Verify::Full),
        other => {
            return Err(format!(
                "sslmode={other} is not one of disable, allow, prefer, require, verify-ca, verify-full"
            ));
        }
    };
    if chosen.1 != Verify::Nothing && !has_roots {
        return Err(
            "sslmode verify-ca and verify-full need sslrootcert=FILE (or store_ca_file)".to_owned(),
        );
    }
    Ok(chosen)
}

fn connector(verify: Verify, roots_pem: Option<&[u8]>) -> Result<MakeRustlsConnect, StoreError> {
    let bad = |why: String| StoreError::Unavailable(format!("store TLS: {why}"));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| bad(e.to_string()))?;
    let mut roots = RootCertStore::empty();
    if let Some(pem) = roots_pem {
        for cert in CertificateDer::pem_slice_iter(pem) {
            let cert = cert.map_err(|e| bad(format!("bad root certificate: {e}")))?;
            roots
                .add(cert)
                .map_err(|e| bad(format!("bad root certificate: {e}")))?;
        }
    }
    let config = match verify {
        Verify::Full => builder.with_root_certificates(roots).with_no_client_auth(),
        Verify::Chain | Verify::Nothing => {
            let chain = match verify {
                Verify::Chain => Some(
                    WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                        .build()
                        .map_err(|e| bad(e.to_string()))?,
                ),
                _ => None,
            };
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(Lenient { chain, provider }))
                .with_no_client_auth()
        }
    };
    Ok(MakeRustlsConnect::new(config))
}

/// `verify-ca` (a `chain` to check: it must lead to a root, the name is not
/// checked) and `prefer`/`require` without a root (no `chain`: encrypted,
/// the peer not checked). The handshake's signatures are checked either way.
#[derive(Debug)]
struct Lenient {
    chain: Option<Arc<WebPkiServerVerifier>>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for Lenient {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some(chain) = &self.chain else {
            return Ok(ServerCertVerified::assertion());
        };
        match chain.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(url: &str) -> Result<Target, StoreError> {
        parse(url, None, Duration::from_secs(1))
    }

    #[test]
    fn sslmode_reads_as_libpq() {
        let t = parsed("postgres://u@h/db").unwrap();
        assert_eq!(t.config.get_ssl_mode(), SslMode::Prefer);
        let t = parsed("postgres://u@h/db?sslmode=disable&application_name=x").unwrap();
        assert_eq!(t.config.get_ssl_mode(), SslMode::Disable);
        assert_eq!(t.config.get_application_name(), Some("x"));
        let t = parsed("postgres://u@h/db?sslmode=require").unwrap();
        assert_eq!(t.config.get_ssl_mode(), SslMode::Require);
        assert_eq!(
            mode(Some("require"), false),
            Ok((SslMode::Require, Verify::Nothing))
        );
        assert_eq!(
            mode(Some("require"), true),
            Ok((SslMode::Require, Verify::Chain))
        );
        assert_eq!(
            mode(Some("verify-ca"), true),
            Ok((SslMode::Require, Verify::Chain))
        );
        assert_eq!(
            mode(Some("verify-full"), true),
            Ok((SslMode::Require, Verify::Full))
        );
        assert!(
            parsed("postgres://u@h/db?sslmode=verify-full").is_err(),
            "needs a root"
        );
        assert!(parsed("postgres://u@h/db?sslmode=sometimes").is_err());
        assert!(parsed("postgres://u@h/db?sslmode=verify-ca&sslrootcert=/nonexistent").is_err());
        assert!(parsed("mysql://u@h/db").is_err());
    }
}
