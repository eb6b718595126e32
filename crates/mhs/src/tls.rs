//! TLS on both sides, and the accept loop that tells handlers who is calling.
//!
//! `axum::serve` cannot show a handler the client's certificate, so [`serve`] runs its
//! own accept loop: TCP accept → rustls handshake (requiring a client certificate signed
//! by the configured CA) → hyper, with the peer's [`PeerIdentity`] put in every request's
//! extensions. Handshake failures (no certificate, one signed by another CA) end the
//! connection before any HTTP is read; they are logged and counted.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tower::ServiceExt;

use crate::Error;

/// An MHS's identity and trust: its certificate chain and key (PEM), and the CA (PEM) whose
/// certificates it accepts from peers, as a server and as a client.
#[derive(Clone)]
pub struct TlsConfig {
    /// This MHS's certificate, then any intermediates (PEM).
    pub cert_chain_pem: String,
    /// Its private key (PEM, PKCS#8 or PKCS#1 or SEC1).
    pub key_pem: String,
    /// The CA certificates trusted for peers (PEM).
    pub ca_pem: String,
}

impl std::fmt::Debug for TlsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TlsConfig { .. }")
    }
}

/// Who is at the other end of a mutual-TLS connection, taken from their certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerIdentity {
    /// The subject's common name (on Spine, the endpoint's FQDN), if any.
    pub common_name: Option<String>,
    /// The whole subject, as text.
    pub subject: String,
    /// The issuer, as text.
    pub issuer: String,
    /// The serial number, hex.
    pub serial: String,
    /// The certificate (DER).
    pub certificate: Vec<u8>,
}

impl PeerIdentity {
    fn from_der(der: &[u8]) -> Option<PeerIdentity> {
        let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
        let common_name = cert
            .subject()
            .iter_common_name()
            .next()
            .and_then(|cn| cn.as_str().ok())
            .map(str::to_string);
        Some(PeerIdentity {
            common_name,
            subject: cert.subject().to_string(),
            issuer: cert.issuer().to_string(),
            serial: cert.raw_serial_as_string(),
            certificate: der.to_vec(),
        })
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn certs(pem: &str, what: &'static str) -> Result<Vec<CertificateDer<'static>>, Error> {
    let certs: Vec<_> = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<_, _>>()
        .map_err(|e| Error::Tls {
            what,
            reason: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(Error::Tls {
            what,
            reason: "no PEM certificate found".into(),
        });
    }
    Ok(certs)
}

fn key(pem: &str) -> Result<PrivateKeyDer<'static>, Error> {
    PrivateKeyDer::from_pem_slice(pem.as_bytes()).map_err(|e| Error::Tls {
        what: "private key",
        reason: e.to_string(),
    })
}

fn roots(pem: &str) -> Result<rustls::RootCertStore, Error> {
    let mut roots = rustls::RootCertStore::empty();
    for c in certs(pem, "CA certificate")? {
        roots.add(c).map_err(|e| Error::Tls {
            what: "CA certificate",
            reason: e.to_string(),
        })?;
    }
    Ok(roots)
}

impl TlsConfig {
    /// The server side: our certificate, and client certificates required and checked
    /// against the CA.
    pub fn server_config(&self) -> Result<Arc<rustls::ServerConfig>, Error> {
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
            Arc::new(roots(&self.ca_pem)?),
            provider(),
        )
        .build()
        .map_err(|e| Error::Tls {
            what: "client verifier",
            reason: e.to_string(),
        })?;
        let mut config = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::Tls {
                what: "server config",
                reason: e.to_string(),
            })?
            .with_client_cert_verifier(verifier)
            .with_single_cert(
                certs(&self.cert_chain_pem, "certificate")?,
                key(&self.key_pem)?,
            )
            .map_err(|e| Error::Tls {
                what: "certificate and key",
                reason: e.to_string(),
            })?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }

    /// The client side: servers checked against the CA, our certificate presented.
    pub fn client_config(&self) -> Result<rustls::ClientConfig, Error> {
        rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::Tls {
                what: "client config",
                reason: e.to_string(),
            })?
            .with_root_certificates(roots(&self.ca_pem)?)
            .with_client_auth_cert(
                certs(&self.cert_chain_pem, "certificate")?,
                key(&self.key_pem)?,
            )
            .map_err(|e| Error::Tls {
                what: "certificate and key",
                reason: e.to_string(),
            })
    }
}

/// The HTTP(S) client the MHS sends with (pooled connections, HTTP/1.1).
pub type HttpClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>;

/// A client that speaks plain HTTP and, given a [`TlsConfig`], HTTPS with our client
/// certificate.
pub fn http_client(tls: Option<&TlsConfig>) -> Result<HttpClient, Error> {
    let config = match tls {
        Some(t) => t.client_config()?,
        None => rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::Tls {
                what: "client config",
                reason: e.to_string(),
            })?
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_no_client_auth(),
    };
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(config)
        .https_or_http()
        .enable_http1()
        .wrap_connector(http);
    Ok(Client::builder(TokioExecutor::new())
        .pool_idle_timeout(std::time::Duration::from_secs(30))
        .build(connector))
}

/// Refuses plain HTTP anywhere but loopback.
pub fn check_listen(addr: SocketAddr, tls: bool) -> Result<(), Error> {
    if !tls && !addr.ip().is_loopback() {
        return Err(Error::InsecureListen { addr });
    }
    Ok(())
}

/// A running server; dropping it (or [`Server::shutdown`]) stops accepting and ends every
/// connection.
#[derive(Debug)]
pub struct Server {
    addr: SocketAddr,
    stop: watch::Sender<bool>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Server {
    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting and ends every connection; returns once the listener is closed.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// Serves `router` on `listener`: over mutual TLS when `tls` is given (the peer's
/// [`PeerIdentity`] in each request's extensions), plain HTTP otherwise — which only a
/// loopback address may do.
pub fn serve(
    listener: TcpListener,
    router: axum::Router,
    tls: Option<Arc<rustls::ServerConfig>>,
) -> Result<Server, Error> {
    let addr = listener
        .local_addr()
        .map_err(|e| Error::Config(e.to_string()))?;
    check_listen(addr, tls.is_some())?;
    let (stop, mut stopped) = watch::channel(false);
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    let task = tokio::spawn(async move {
        let mut connections = JoinSet::new();
        loop {
            let accepted = tokio::select! {
                a = listener.accept() => a,
                _ = stopped.changed() => break,
                Some(_) = connections.join_next(), if !connections.is_empty() => continue,
            };
            let (tcp, remote) = match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    continue;
                }
            };
            let _ = tcp.set_nodelay(true);
            let router = router.clone();
            let acceptor = acceptor.clone();
            connections.spawn(async move {
                match acceptor {
                    None => serve_connection(TokioIo::new(tcp), router, None).await,
                    Some(acceptor) => match acceptor.accept(tcp).await {
                        Ok(stream) => {
                            let peer = stream
                                .get_ref()
                                .1
                                .peer_certificates()
                                .and_then(|c| c.first())
                                .and_then(|c| PeerIdentity::from_der(c));
                            serve_connection(TokioIo::new(stream), router, peer).await
                        }
                        Err(e) => {
                            metrics::counter!("mhs_tls_handshakes_refused_total").increment(1);
                            tracing::warn!(%remote, error = %e, "TLS handshake refused: the peer has no certificate this MHS trusts");
                        }
                    },
                }
            });
        }
        connections.shutdown().await;
    });
    Ok(Server {
        addr,
        stop,
        task: Some(task),
    })
}

async fn serve_connection<I>(io: I, router: axum::Router, peer: Option<PeerIdentity>)
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let service =
        hyper::service::service_fn(move |mut req: http::Request<hyper::body::Incoming>| {
            if let Some(p) = &peer {
                req.extensions_mut().insert(p.clone());
            }
            router.clone().oneshot(req.map(axum::body::Body::new))
        });
    if let Err(e) = hyper::server::conn::http1::Builder::new()
        .keep_alive(true)
        .serve_connection(io, service)
        .await
    {
        tracing::debug!(error = %e, "connection ended with an error");
    }
}
