//! The Apple/Google Exposure Notification export format: a zip holding `export.bin` (a 16-byte
//! header, then a `TemporaryExposureKeyExport`) and `export.sig` (a `TEKSignatureList`: one ECDSA
//! P-256 / SHA-256 signature over the whole `export.bin` per signing key).
//!
//! [`Package::build`] writes packages for distribution; [`Package::open`] and [`Verifier`] read
//! and check them the way a phone does (the simulator, the tests).

use openwarn_protocol::Message;
use openwarn_protocol::gaen::{
    SignatureInfo, TekSignature, TekSignatureList, TemporaryExposureKey, TemporaryExposureKeyExport,
};
use p256::ecdsa::signature::Verifier as _;
use p256::ecdsa::signature::hazmat::PrehashSigner;
use p256::ecdsa::{Signature, SigningKey, VerifyingKey};
use p256::pkcs8::{DecodePrivateKey, DecodePublicKey};
use sha2::{Digest, Sha256};
use std::io::{Read, Write};

/// The 16 bytes every `export.bin` starts with.
pub const HEADER: &[u8; 16] = b"EK Export v1    ";
/// ECDSA P-256 with SHA-256.
pub const ALGORITHM_OID: &str = "1.2.840.10045.4.3.2";
pub const BIN_NAME: &str = "export.bin";
pub const SIG_NAME: &str = "export.sig";
/// Largest file of a package [`Package::open`] reads: a package of 600,000 keys (distribution's
/// default cap) is about 22 MB; this leaves room for a cap five times higher.
pub const MAX_FILE_BYTES: u64 = 128 << 20;

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("signing key: {0}")]
    SigningKey(String),
    #[error("public key: {0}")]
    PublicKey(String),
    #[error("not a package: {0}")]
    Zip(String),
    #[error("export.bin does not start with the export header")]
    Header,
    #[error("cannot decode {0}")]
    Decode(&'static str),
    #[error("no signature verifies with the key")]
    BadSignature,
    #[error("cannot write the package: {0}")]
    Write(String),
}

/// One signing key with the `SignatureInfo` it is published under.
#[derive(Clone)]
pub struct Signer {
    key: SigningKey,
    info: SignatureInfo,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer")
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

/// What a package's signatures say about the key that made them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyInfo {
    pub verification_key_id: String,
    pub verification_key_version: String,
    pub app_bundle_id: Option<String>,
    pub android_package: Option<String>,
}

impl Signer {
    /// A signer from a PKCS#8 PEM private key (`-----BEGIN PRIVATE KEY-----`).
    pub fn from_pkcs8_pem(pem: &str, info: &KeyInfo) -> Result<Self, ExportError> {
        let key =
            SigningKey::from_pkcs8_pem(pem).map_err(|e| ExportError::SigningKey(e.to_string()))?;
        Ok(Self {
            key,
            info: SignatureInfo {
                app_bundle_id: info.app_bundle_id.clone(),
                android_package: info.android_package.clone(),
                verification_key_version: Some(info.verification_key_version.clone()),
                verification_key_id: Some(info.verification_key_id.clone()),
                signature_algorithm: Some(ALGORITHM_OID.to_owned()),
            },
        })
    }

    pub fn info(&self) -> &SignatureInfo {
        &self.info
    }

    /// The public key phones verify with.
    pub fn verifier(&self) -> Verifier {
        Verifier {
            key: *self.key.verifying_key(),
        }
    }

    /// DER signature over the SHA-256 `digest` of an `export.bin`. Deterministic (RFC 6979): the
    /// same bytes always get the same signature, so reruns publish identical files.
    #[allow(
        clippy::expect_used,
        reason = "a SHA-256 digest is 32 bytes, the prehash P-256 signs; RFC 6979 needs no randomness"
    )]
    fn sign_digest(&self, digest: &[u8]) -> Vec<u8> {
        let signature: Signature = self
            .key
            .sign_prehash(digest)
            .expect("a 32-byte SHA-256 digest is a valid prehash");
        signature.to_der().as_bytes().to_vec()
    }
}

/// A public key that checks packages.
#[derive(Debug, Clone)]
pub struct Verifier {
    key: VerifyingKey,
}

impl Verifier {
    /// From an SPKI PEM public key (`-----BEGIN PUBLIC KEY-----`), as published for phones.
    pub fn from_public_key_pem(pem: &str) -> Result<Self, ExportError> {
        let key = VerifyingKey::from_public_key_pem(pem)
            .map_err(|e| ExportError::PublicKey(e.to_string()))?;
        Ok(Self { key })
    }

    /// Ok when a signature of the package verifies with this key over its export.bin, and
    /// export.sig is exactly what a signer writes for that export.bin: a canonical
    /// `TEKSignatureList` whose `SignatureInfo`, batch number and size are the ones export.bin
    /// declares. So any changed byte of either file is refused, not just of the signed one.
    pub fn verify(&self, package: &Package) -> Result<(), ExportError> {
        let export = package.export()?;
        let list = package.signatures()?;
        if list.encode_to_vec() != package.sig {
            return Err(ExportError::Decode("export.sig"));
        }
        let ok = list.signatures.iter().any(|s| {
            s.signature_info
                .as_ref()
                .is_some_and(|info| export.signature_infos.contains(info))
                && s.batch_num == export.batch_num
                && s.batch_size == export.batch_size
                && s.signature
                    .as_deref()
                    .and_then(|der| Signature::from_der(der).ok())
                    .is_some_and(|sig| self.key.verify(&package.bin, &sig).is_ok())
        });
        if ok {
            Ok(())
        } else {
            Err(ExportError::BadSignature)
        }
    }

    /// For signed content without the export header (the application configuration): a
    /// canonical `TEKSignatureList` with a signature that verifies over export.bin.
    pub fn verify_content(&self, package: &Package) -> Result<(), ExportError> {
        let list = package.signatures()?;
        if list.encode_to_vec() != package.sig {
            return Err(ExportError::Decode("export.sig"));
        }
        let ok = list.signatures.iter().any(|s| {
            s.signature_info
                .as_ref()
                .is_some_and(|info| info.signature_algorithm() == ALGORITHM_OID)
                && s.signature
                    .as_deref()
                    .and_then(|der| Signature::from_der(der).ok())
                    .is_some_and(|sig| self.key.verify(&package.bin, &sig).is_ok())
        });
        if ok {
            Ok(())
        } else {
            Err(ExportError::BadSignature)
        }
    }
}

/// What an `export.bin` says about its keys (everything but the keys).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Batch {
    /// Seconds since the epoch: the window the keys were published for.
    pub start_timestamp: u64,
    pub end_timestamp: u64,
    pub region: String,
}

/// The two files of a package.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Package {
    pub bin: Vec<u8>,
    pub sig: Vec<u8>,
}

impl Package {
    /// `export.bin` for `keys` (which the caller has ordered by `key_data`), signed by every
    /// signer (one `TEKSignature` each: several during a key rotation).
    pub fn build<'a>(
        batch: &Batch,
        keys: impl ExactSizeIterator<Item = &'a TemporaryExposureKey>,
        signers: &[Signer],
    ) -> Self {
        let head = TemporaryExposureKeyExport {
            start_timestamp: Some(batch.start_timestamp),
            end_timestamp: Some(batch.end_timestamp),
            region: Some(batch.region.clone()),
            batch_num: Some(1),
            batch_size: Some(1),
            signature_infos: signers.iter().map(|s| s.info.clone()).collect(),
            keys: Vec::new(),
            revised_keys: Vec::new(),
        };
        // Field 7 is written key by key after the header fields: the same bytes prost writes for
        // the whole message (fields in number order), without holding a second copy of the keys.
        let mut bin = Vec::with_capacity(HEADER.len() + head.encoded_len() + keys.len() * 36);
        bin.extend_from_slice(HEADER);
        bin.extend_from_slice(&head.encode_to_vec());
        for key in keys {
            openwarn_protocol::prost::encoding::message::encode(7, key, &mut bin);
        }
        Self::signed(bin, signers, 1, 1)
    }

    /// Signs arbitrary content (the application configuration uses the same scheme).
    pub fn signed(bin: Vec<u8>, signers: &[Signer], batch_num: i32, batch_size: i32) -> Self {
        let digest = Sha256::digest(&bin);
        let sig = TekSignatureList {
            signatures: signers
                .iter()
                .map(|s| TekSignature {
                    signature_info: Some(s.info.clone()),
                    batch_num: Some(batch_num),
                    batch_size: Some(batch_size),
                    signature: Some(s.sign_digest(&digest)),
                })
                .collect(),
        }
        .encode_to_vec();
        Self { bin, sig }
    }

    /// The zip file: export.bin then export.sig, deflated, with fixed timestamps (the same
    /// package always zips to the same bytes).
    pub fn to_zip(&self) -> Result<Vec<u8>, ExportError> {
        let write = |e: zip::result::ZipError| ExportError::Write(e.to_string());
        let mut out = zip::ZipWriter::new(std::io::Cursor::new(Vec::with_capacity(
            self.bin.len() + self.sig.len() + 512,
        )));
        let options = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated)
            .compression_level(Some(1))
            .last_modified_time(zip::DateTime::default())
            .large_file(false);
        for (name, data) in [(BIN_NAME, &self.bin), (SIG_NAME, &self.sig)] {
            out.start_file(name, options).map_err(write)?;
            out.write_all(data)
                .map_err(|e| ExportError::Write(e.to_string()))?;
        }
        Ok(out.finish().map_err(write)?.into_inner())
    }

    /// Reads a package zip.
    pub fn open(zip_bytes: &[u8]) -> Result<Self, ExportError> {
        let mut archive = zip::ZipArchive::new(std::io::Cursor::new(zip_bytes))
            .map_err(|e| ExportError::Zip(e.to_string()))?;
        let mut read = |name: &str| -> Result<Vec<u8>, ExportError> {
            let too_large = || ExportError::Zip(format!("{name}: over {MAX_FILE_BYTES} bytes"));
            let file = archive
                .by_name(name)
                .map_err(|e| ExportError::Zip(format!("{name}: {e}")))?;
            // The sizes in the headers are the sender's word: neither what is reserved nor what
            // is read goes past the bound, whatever they declare (or a deflate bomb inflates to).
            let declared = file.size();
            if declared > MAX_FILE_BYTES {
                return Err(too_large());
            }
            let mut data = Vec::with_capacity(usize::try_from(declared).unwrap_or(0));
            file.take(MAX_FILE_BYTES + 1)
                .read_to_end(&mut data)
                .map_err(|e| ExportError::Zip(format!("{name}: {e}")))?;
            if data.len() as u64 > MAX_FILE_BYTES {
                return Err(too_large());
            }
            Ok(data)
        };
        let bin = read(BIN_NAME)?;
        let sig = read(SIG_NAME)?;
        Ok(Self { bin, sig })
    }

    /// The decoded `export.bin` (after its header).
    pub fn export(&self) -> Result<TemporaryExposureKeyExport, ExportError> {
        let body = self
            .bin
            .strip_prefix(HEADER.as_slice())
            .ok_or(ExportError::Header)?;
        TemporaryExposureKeyExport::decode(body).map_err(|_| ExportError::Decode("export.bin"))
    }

    /// The decoded `export.sig`.
    pub fn signatures(&self) -> Result<TekSignatureList, ExportError> {
        TekSignatureList::decode(self.sig.as_slice()).map_err(|_| ExportError::Decode("export.sig"))
    }
}

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;
