//! TLS to the database: with `sslmode=require` in the URL, connections are encrypted and the
//! server's certificate is verified (against `[store] ca_file`, or the public roots) and must
//! name the URL's host. Without it they are plain TCP (for a loopback or private network).

use crate::store::{StoreError, StoreResult};
use std::path::Path;
use std::sync::Arc;
use tokio_postgres::config::SslMode;

/// The connector the URL asks for: `None` for plain connections.
pub(super) fn connector(
    cfg: &tokio_postgres::Config,
    ca_file: Option<&Path>,
    shown: &str,
) -> StoreResult<Option<tokio_postgres_rustls::MakeRustlsConnect>> {
    if cfg.get_ssl_mode() != SslMode::Require {
        if let Some(ca) = ca_file {
            return Err(StoreError::Unavailable(format!(
                "store.ca_file {} is set but {shown} does not ask for TLS: add \
                 sslmode=require to the URL",
                ca.display()
            )));
        }
        return Ok(None);
    }
    use rustls::pki_types::{pem::PemObject, CertificateDer};
    let mut roots = rustls::RootCertStore::empty();
    match ca_file {
        Some(path) => {
            let certs = CertificateDer::pem_file_iter(path)
                .and_then(|it| it.collect::<Result<Vec<_>, _>>())
                .map_err(|e| {
                    StoreError::Unavailable(format!("store.ca_file {}: {e}", path.display()))
                })?;
            let (added, _) = roots.add_parsable_certificates(certs);
            if added == 0 {
                return Err(StoreError::Unavailable(format!(
                    "store.ca_file {}: holds no usable certificate",
                    path.display()
                )));
            }
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| StoreError::Unavailable(format!("TLS to {shown}: {e}")))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(Some(tokio_postgres_rustls::MakeRustlsConnect::new(config)))
}
