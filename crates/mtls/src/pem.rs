//! Reading PEM files (rustls' own PEM parser, `rustls::pki_types::pem`).

use crate::TlsError;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::path::Path;

pub(crate) fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_owned(),
        source,
    })
}

/// Every certificate in `pem`, in order; sections that are not certificates are skipped.
pub(crate) fn certs(pem: &[u8]) -> Vec<CertificateDer<'static>> {
    CertificateDer::pem_slice_iter(pem)
        .filter_map(Result::ok)
        .collect()
}

/// The first private key in `pem` (PKCS#8, PKCS#1 or SEC1).
pub(crate) fn private_key(pem: &[u8]) -> Option<PrivateKeyDer<'static>> {
    PrivateKeyDer::from_pem_slice(pem).ok()
}

/// The certificates of the file at `path`; an error when it holds none.
#[cfg(test)]
pub(crate) fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = certs(&read(path)?);
    if certs.is_empty() {
        return Err(TlsError::Pem {
            path: path.to_owned(),
            what: "certificate",
        });
    }
    Ok(certs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn certificates_and_keys_are_found_among_other_sections() {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["x".to_owned()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let both = format!("{}{}", key.serialize_pem(), cert.pem());
        assert_eq!(certs(both.as_bytes()).len(), 1);
        assert_eq!(certs(both.as_bytes())[0].as_ref(), cert.der().as_ref());
        let found = private_key(both.as_bytes()).unwrap();
        assert_eq!(found.secret_der(), key.serialize_der().as_slice());
        assert!(certs(b"not pem").is_empty());
        assert!(private_key(cert.pem().as_bytes()).is_none());
    }
}
