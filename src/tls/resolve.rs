//! TLS configuration: the server's, with one certificate resolver that picks by SNI among the
//! declared names (each name's ACME state answers its own TLS-ALPN-01 challenges), and the
//! client's, for talking to the ACME directory.

use std::collections::HashMap;
use std::io;
use std::path::Path;
use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::ServerConfig;
use rustls::client::ClientConfig;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_acme::ResolvesServerCertAcme;

/// ALPN protocols ten's HTTPS speaks, most preferred first; `acme-tls/1` is only ever chosen
/// by an ACME server validating a challenge (no browser offers it).
pub(crate) const ALPN: [&[u8]; 3] = [b"h2", b"http/1.1", rustls_acme::acme::ACME_TLS_ALPN_NAME];

/// The declared names and each one's resolver; swapped whole when the names change.
#[derive(Debug, Default)]
pub(crate) struct SniResolver {
    names: ArcSwap<HashMap<String, Arc<ResolvesServerCertAcme>>>,
}

impl SniResolver {
    pub(crate) fn set(&self, names: HashMap<String, Arc<ResolvesServerCertAcme>>) {
        self.names.store(Arc::new(names));
    }

    pub(crate) fn get(&self, name: &str) -> Option<Arc<ResolvesServerCertAcme>> {
        self.names.load().get(name).cloned()
    }
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        // A name nobody declared (or none at all): the handshake fails at once, and nothing
        // is ever ordered for it.
        let Some(resolver) = hello.server_name().and_then(|name| {
            if name.bytes().any(|byte| byte.is_ascii_uppercase()) {
                self.get(&name.to_ascii_lowercase())
            } else {
                self.get(name)
            }
        }) else {
            crate::metrics::global().tls_unknown_name();
            return None;
        };
        resolver.resolve(hello)
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// The server's configuration: certificates by SNI, HTTP/2 and HTTP/1.1, session tickets.
pub(crate) fn server_config(resolver: Arc<SniResolver>) -> io::Result<Arc<ServerConfig>> {
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(io::Error::other)?
        .with_no_client_auth()
        .with_cert_resolver(resolver);
    config.alpn_protocols = ALPN.iter().map(|protocol| protocol.to_vec()).collect();
    config.ticketer = rustls::crypto::aws_lc_rs::Ticketer::new().map_err(io::Error::other)?;
    Ok(Arc::new(config))
}

/// The client's configuration for the ACME directory: the public roots, and the certificates
/// of `extra_roots` (a PEM file) when given. Blocking (reads the file).
pub(crate) fn client_config(extra_roots: Option<&Path>) -> io::Result<Arc<ClientConfig>> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(path) = extra_roots {
        let certificates: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
            .and_then(|found| found.collect())
            .map_err(|error| {
                io::Error::other(format!(
                    "cannot read the certificates in {}: {error}",
                    path.display()
                ))
            })?;
        if certificates.is_empty() {
            return Err(io::Error::other(format!(
                "{} has no certificate (PEM, `-----BEGIN CERTIFICATE-----`)",
                path.display()
            )));
        }
        for certificate in certificates {
            roots.add(certificate).map_err(|error| {
                io::Error::other(format!(
                    "a certificate in {} is not usable: {error}",
                    path.display()
                ))
            })?;
        }
    }
    let config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(io::Error::other)?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}
