//! A load of full TLS handshakes, which wrk cannot make (it resumes its last session on each
//! new connection): `connections` tasks on as many threads as wrk would use, each connecting
//! again and again — TCP connect, a TLS 1.3 handshake without resumption, one
//! `GET / HTTP/1.1` with `Connection: close`, the answer read to its end — for a fixed time.
//!
//! Like wrk (OpenSSL with `SSL_VERIFY_NONE`), the client checks the server's handshake
//! signature but not its certificate chain (the bench checks the certificate once, with
//! curl): verifying a chain would take the client's CPU from the servers it loads. It offers
//! what wrk's OpenSSL 3.0 offers: TLS 1.3 and 1.2, AES-256-GCM first, X25519 (not the
//! post-quantum hybrid, which nginx's OpenSSL cannot do and ten's rustls prefers), no ALPN.

use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::TlsConnector;

/// What a load of full handshakes measured.
pub(crate) struct Load {
    /// Handshakes (each with its request) per second.
    pub rate: f64,
    /// From the connect to the answer's end.
    pub p50_ms: f64,
    pub p99_ms: f64,
}

/// A client of `https://NAME/` that never resumes a session.
pub(crate) struct Client {
    connector: TlsConnector,
    name: ServerName<'static>,
    request: Arc<Vec<u8>>,
}

impl Client {
    pub(crate) fn new(name: &str) -> Client {
        let mut provider = rustls::crypto::aws_lc_rs::default_provider();
        provider.kx_groups = vec![rustls::crypto::aws_lc_rs::kx_group::X25519];
        let verifier = Arc::new(SignatureOnly(provider.signature_verification_algorithms));
        let mut config = ClientConfig::builder_with_provider(Arc::new(provider))
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth();
        config.resumption = rustls::client::Resumption::disabled();
        Client {
            connector: TlsConnector::from(Arc::new(config)),
            name: ServerName::try_from(name.to_string()).expect("a DNS name"),
            request: Arc::new(
                format!("GET / HTTP/1.1\r\nHost: {name}\r\nConnection: close\r\n\r\n").into_bytes(),
            ),
        }
    }

    /// `connections` clients connecting to `127.0.0.1:port` again and again for `seconds`.
    /// Panics if a request fails.
    pub(crate) fn load(&self, port: u16, connections: u32, seconds: u32) -> Load {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(connections.min(2) as usize)
            .enable_io()
            .build()
            .expect("a runtime for the client");
        let started = Instant::now();
        let deadline = started + Duration::from_secs(u64::from(seconds));
        let mut latencies: Vec<u32> = runtime.block_on(async {
            let tasks: Vec<_> = (0..connections)
                .map(|_| {
                    let (connector, name) = (self.connector.clone(), self.name.clone());
                    let request = Arc::clone(&self.request);
                    tokio::spawn(async move {
                        let mut latencies = Vec::new();
                        let mut answer = Vec::with_capacity(1024);
                        while Instant::now() < deadline {
                            let begun = Instant::now();
                            exchange(&connector, &name, port, &request, &mut answer)
                                .await
                                .unwrap_or_else(|error| panic!("a request failed: {error}"));
                            latencies.push(begun.elapsed().as_micros() as u32);
                        }
                        latencies
                    })
                })
                .collect();
            let mut all = Vec::new();
            for task in tasks {
                all.extend(task.await.expect("a client task"));
            }
            all
        });
        let elapsed = started.elapsed().as_secs_f64();
        latencies.sort_unstable();
        let percentile = |p: f64| {
            let index = ((latencies.len() as f64 * p).ceil() as usize).clamp(1, latencies.len());
            f64::from(latencies[index - 1]) / 1000.0
        };
        Load {
            rate: latencies.len() as f64 / elapsed,
            p50_ms: percentile(0.50),
            p99_ms: percentile(0.99),
        }
    }

    /// The protocol, cipher suite and key exchange of a connection to `127.0.0.1:port`.
    pub(crate) fn negotiated(&self, port: u16) -> String {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()
            .expect("a runtime for the client");
        runtime.block_on(async {
            let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .expect("connect");
            let tls = self
                .connector
                .connect(self.name.clone(), tcp)
                .await
                .expect("TLS handshake");
            let connection = tls.get_ref().1;
            format!(
                "{:?} {:?} {:?}, resumed: {:?}",
                connection.protocol_version().expect("a version"),
                connection
                    .negotiated_cipher_suite()
                    .expect("a cipher suite")
                    .suite(),
                connection
                    .negotiated_key_exchange_group()
                    .expect("a key exchange")
                    .name(),
                connection.handshake_kind().expect("a handshake"),
            )
        })
    }
}

/// One connection: handshake, request, the answer to its end (the server closes).
async fn exchange(
    connector: &TlsConnector,
    name: &ServerName<'static>,
    port: u16,
    request: &[u8],
    answer: &mut Vec<u8>,
) -> io::Result<()> {
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    tcp.set_nodelay(true)?;
    let mut tls = connector.connect(name.clone(), tcp).await?;
    tls.write_all(request).await?;
    answer.clear();
    match tls.read_to_end(answer).await {
        Ok(_) => {}
        // Closed without close_notify, after the whole answer.
        Err(error) if error.kind() == io::ErrorKind::UnexpectedEof && !answer.is_empty() => {}
        Err(error) => return Err(error),
    }
    if answer.starts_with(b"HTTP/1.1 200") {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "not a 200: {}",
            String::from_utf8_lossy(&answer[..answer.len().min(200)])
        )))
    }
}

/// Accepts any certificate, but checks the handshake's signature with the certificate's key
/// (as OpenSSL does with `SSL_VERIFY_NONE`).
#[derive(Debug)]
struct SignatureOnly(WebPkiSupportedAlgorithms);

impl ServerCertVerifier for SignatureOnly {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_schemes()
    }
}
