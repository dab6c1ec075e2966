//! TLS termination of TCP streams: the handshake with the client uses the
//! stream's certificate from the certificate store, then the plaintext is
//! relayed to the upstream like any TCP stream.
//!
//! The compiled stream holds the parsed certificate and an acceptor built
//! from it. Every revision that changes the certificate (an upload, an ACME
//! renewal) compiles a new acceptor, which the stream manager stores in the
//! running stream: the next handshake serves the new certificate, while
//! connections already open keep the session they negotiated.

use std::fmt;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use openssl::ssl::{Ssl, SslAcceptor};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio_openssl::SslStream;

use crate::config::Id;
use crate::tls::ParsedCertificate;

/// Longest a TLS handshake with a stream client may take (or the stream's
/// idle timeout, when shorter).
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The TLS side of a compiled TCP stream.
pub struct StreamTls {
    certificate_id: Id,
    /// `None` while the certificate has no PEM yet (ACME order pending):
    /// handshakes are refused until it is issued.
    served: Option<Served>,
}

struct Served {
    certificate: Arc<ParsedCertificate>,
    acceptor: Arc<SslAcceptor>,
}

impl fmt::Debug for StreamTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StreamTls")
            .field("certificate_id", &self.certificate_id)
            .field("certificate", &self.served.as_ref().map(|s| &s.certificate))
            .finish()
    }
}

impl StreamTls {
    pub(crate) fn new(certificate: Arc<ParsedCertificate>, acceptor: SslAcceptor) -> Self {
        StreamTls {
            certificate_id: certificate.id(),
            served: Some(Served {
                certificate,
                acceptor: Arc::new(acceptor),
            }),
        }
    }

    pub(crate) fn pending(certificate_id: Id) -> Self {
        StreamTls {
            certificate_id,
            served: None,
        }
    }

    /// The same acceptor, when `cert` is the very certificate it serves
    /// (the certificate table keeps unchanged certificates across
    /// revisions).
    pub(crate) fn reuse_for(&self, cert: &Arc<ParsedCertificate>) -> Option<StreamTls> {
        let s = self.served.as_ref()?;
        Arc::ptr_eq(&s.certificate, cert).then(|| StreamTls {
            certificate_id: self.certificate_id,
            served: Some(Served {
                certificate: s.certificate.clone(),
                acceptor: s.acceptor.clone(),
            }),
        })
    }

    /// The certificate's id in the config.
    pub fn certificate_id(&self) -> Id {
        self.certificate_id
    }

    /// The certificate served, `None` while it is not issued yet.
    pub fn certificate(&self) -> Option<&Arc<ParsedCertificate>> {
        self.served.as_ref().map(|s| &s.certificate)
    }

    /// Runs the server side of a handshake on `client`, giving up after
    /// `timeout` or when `closing` is set.
    pub(crate) async fn accept(
        &self,
        client: TcpStream,
        timeout: Duration,
        closing: &mut watch::Receiver<bool>,
    ) -> io::Result<SslStream<TcpStream>> {
        let Some(served) = &self.served else {
            return Err(io::Error::other(format!(
                "certificate {} is not issued yet; refusing the TLS handshake",
                self.certificate_id
            )));
        };
        let ssl = Ssl::new(served.acceptor.context()).map_err(io::Error::other)?;
        let mut stream = SslStream::new(ssl, client).map_err(io::Error::other)?;
        let handshake = Pin::new(&mut stream).accept();
        tokio::select! {
            r = tokio::time::timeout(timeout, handshake) => match r {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("TLS handshake failed: {e}"),
                    ))
                }
                Err(_) => {
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "TLS handshake timed out",
                    ))
                }
            },
            _ = closing.wait_for(|c| *c) => {
                return Err(io::Error::other("the stream was removed during the TLS handshake"))
            }
        }
        Ok(stream)
    }
}
