//! TLS for the node-to-node transport (rustls, TLS 1.3 only, ring provider).
//!
//! # How a connection's TLS session is bound to a ledger node key
//!
//! rustls has no SM2 (nor TLCP), so a node's SM2 key cannot be a TLS certificate key.
//! Instead each node makes an **ephemeral, self-signed ECDSA P-256 certificate** when its
//! transport starts; the certificate carries no identity and the dialer does not check
//! its chain (it does check the TLS handshake signature made with it). Identity is proven
//! inside the TLS session by the transport's handshake (`transport.rs`): both sides sign,
//! with their ledger node keys, a message that includes 32 bytes of the session's keying
//! material exporter (RFC 8446 §7.5, label [`EXPORTER_LABEL`], no context). The exporter
//! value is unique to the TLS session, so a man in the middle, who necessarily runs two
//! different sessions, cannot relay a signature from one to the other; a peer whose key
//! is not configured fails that handshake and is closed. This is channel binding in the
//! sense of RFC 9266 (`tls-exporter`), with the binding made by the node key rather than
//! by the certificate. No organisation CA is involved: the participant keys configured
//! for each ledger are the trust anchors, as they are without TLS.
//!
//! What TLS adds over the plaintext transport: confidentiality of ledger traffic and
//! integrity of every frame (a modified byte fails the record's AEAD tag and rustls closes
//! the connection), and a plaintext client is refused at the TLS handshake.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use tokio_rustls::{TlsAcceptor, TlsConnector};

/// Exporter label whose output the handshake signatures cover.
/// (RFC 5705 §4: labels beginning with `EXPERIMENTAL` are for private use.)
pub const EXPORTER_LABEL: &[u8] = b"EXPERIMENTAL-polyledger-p2p";
/// Bytes taken from the exporter.
pub const EXPORTER_LEN: usize = 32;
/// The server name the dialer presents (the certificate carries no identity).
pub const SERVER_NAME: &str = "polyledger-node";

/// The ring provider, TLS 1.3 only.
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The acceptor and connector of one transport.
#[derive(Clone)]
pub struct P2pTls {
    pub(crate) acceptor: TlsAcceptor,
    pub(crate) connector: TlsConnector,
}

impl P2pTls {
    /// A fresh ephemeral certificate and the configurations around it.
    pub fn new() -> std::io::Result<Self> {
        let other = |e: String| std::io::Error::other(e);
        let certified = rcgen::generate_simple_self_signed(vec![SERVER_NAME.to_owned()])
            .map_err(|e| other(format!("p2p TLS certificate: {e}")))?;
        let cert = CertificateDer::from(certified.cert.der().to_vec());
        let key =
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(certified.key_pair.serialize_der()));
        let server = rustls::ServerConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|e| other(e.to_string()))?
            .with_no_client_auth()
            .with_single_cert(vec![cert], key)
            .map_err(|e| other(format!("p2p TLS server: {e}")))?;
        let client = Self::client_config();
        Ok(P2pTls {
            acceptor: TlsAcceptor::from(Arc::new(server)),
            connector: TlsConnector::from(Arc::new(client)),
        })
    }

    /// A client configuration as the dialer uses it (tests drive raw TLS handshakes).
    pub fn client_config() -> rustls::ClientConfig {
        rustls::ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .expect("TLS 1.3 is supported by ring")
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(BoundByNodeKey(provider())))
            .with_no_client_auth()
    }
}

/// Accepts the peer's ephemeral certificate without a chain (the node-key signature over
/// the session's exporter authenticates the peer) but checks that the peer signed the
/// TLS handshake with that certificate's key.
#[derive(Debug)]
struct BoundByNodeKey(Arc<CryptoProvider>);

impl ServerCertVerifier for BoundByNodeKey {
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
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        // Only TLS 1.3 is offered.
        Err(rustls::Error::PeerIncompatible(rustls::PeerIncompatible::Tls12NotOfferedOrEnabled))
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
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
