//! Readable reasons for transport failures. The HTTP client's own message
//! ("error sending request") hides the cause, so walk the source chain, and
//! name certificate problems in the words an operator searches for.

use std::error::Error;

use rustls::{AlertDescription, CertificateError};

/// Why a request could not be sent or its answer not read.
/// `client_cert` says whether a client certificate was configured.
pub(crate) fn send_error(e: reqwest::Error, client_cert: bool) -> String {
    if let Some(tls) = find_tls(&e) {
        return tls_reason(tls, client_cert);
    }
    let timed_out = e.is_timeout();
    // The URL is in the caller's message already.
    let text = chain(&e.without_url());
    if timed_out && !text.contains("timed out") { format!("timed out: {text}") } else { text }
}

/// Messages of `e` and its sources, without repeats.
pub(crate) fn chain(e: &(dyn Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut next = Some(e);
    while let Some(err) = next {
        let msg = err.to_string();
        if !parts.iter().any(|p| p.contains(&msg)) {
            parts.push(msg);
        }
        next = err.source();
    }
    parts.join(": ")
}

/// The rustls error behind `e`, if any. I/O errors wrap it without
/// exposing it as a source, so look inside them too.
pub(crate) fn find_tls<'a>(e: &'a (dyn Error + 'static)) -> Option<&'a rustls::Error> {
    let mut next = Some(e);
    while let Some(err) = next {
        if let Some(tls) = err.downcast_ref::<rustls::Error>() {
            return Some(tls);
        }
        if let Some(inner) = err.downcast_ref::<std::io::Error>().and_then(|io| io.get_ref())
            && let Some(tls) = find_tls(inner)
        {
            return Some(tls);
        }
        next = err.source();
    }
    None
}

fn tls_reason(e: &rustls::Error, client_cert: bool) -> String {
    match e {
        rustls::Error::InvalidCertificate(cert) => {
            let why = match cert {
                CertificateError::UnknownIssuer => {
                    "unknown issuer (the server certificate is not signed by a trusted CA; configure the registry's CA)"
                        .to_string()
                }
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                    "the certificate is not valid for this host name".to_string()
                }
                CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                    "the certificate has expired".to_string()
                }
                CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                    "the certificate is not valid yet".to_string()
                }
                CertificateError::Revoked => "the certificate is revoked".to_string(),
                CertificateError::BadSignature => "bad certificate signature".to_string(),
                CertificateError::InvalidPurpose | CertificateError::InvalidPurposeContext { .. } => {
                    "the certificate is not valid for server authentication".to_string()
                }
                other => other.to_string(),
            };
            format!("certificate verify failed: {why}")
        }
        rustls::Error::AlertReceived(alert @ AlertDescription::CertificateRequired) => {
            format!("tls handshake failed: the server requires a client certificate (alert {alert:?})")
        }
        // Servers that want a certificate and got none often say "bad certificate".
        rustls::Error::AlertReceived(
            alert @ (AlertDescription::BadCertificate | AlertDescription::HandshakeFailure),
        ) if !client_cert => {
            format!(
                "tls handshake failed: the server probably requires a client certificate, and none is configured \
                 (alert {alert:?})"
            )
        }
        rustls::Error::AlertReceived(
            alert @ (AlertDescription::BadCertificate
            | AlertDescription::UnknownCA
            | AlertDescription::CertificateUnknown
            | AlertDescription::UnsupportedCertificate
            | AlertDescription::CertificateExpired
            | AlertDescription::CertificateRevoked),
        ) => format!("tls handshake failed: the server rejected the client certificate (alert {alert:?})"),
        rustls::Error::InvalidMessage(rustls::InvalidMessage::InvalidContentType) => {
            "tls error: the server does not speak TLS (is it a plain http endpoint?)".to_string()
        }
        other => format!("tls error: {other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Outer(std::io::Error);
    impl std::fmt::Display for Outer {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("client error (Connect)")
        }
    }
    impl Error for Outer {
        fn source(&self) -> Option<&(dyn Error + 'static)> {
            Some(&self.0)
        }
    }

    #[test]
    fn tls_errors_are_found_inside_io_errors() {
        let tls = rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer);
        let e = Outer(std::io::Error::new(std::io::ErrorKind::InvalidData, tls));
        let found = find_tls(&e).map(|t| tls_reason(t, false)).unwrap();
        assert!(found.starts_with("certificate verify failed: unknown issuer"), "{found}");
        let alert = rustls::Error::AlertReceived(AlertDescription::CertificateRequired);
        assert!(tls_reason(&alert, false).contains("requires a client certificate"));
        let alert = rustls::Error::AlertReceived(AlertDescription::BadCertificate);
        assert!(tls_reason(&alert, false).contains("none is configured"));
        assert!(tls_reason(&alert, true).contains("rejected the client certificate"));
    }

    #[test]
    fn chains_skip_repeated_messages() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "connection refused");
        assert_eq!(chain(&Outer(io)), "client error (Connect): connection refused");
    }
}
