//! Secrets at rest and token hashing.
//!
//! [`Vault`] seals values with AES-256-GCM under the master key. The associated data binds each
//! ciphertext to its owner (workspace id and secret id), so a sealed value copied into another
//! row or tenant fails to open. Layout: `[version=1][nonce; 12][ciphertext ‖ tag]`.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::reasons::Reason;

const VERSION: u8 = 1;

/// The master key, 32 bytes. `Debug` never shows it.
#[derive(Clone)]
pub struct Vault {
    cipher: Aes256Gcm,
    /// HMAC key for signed tokens (upload URLs), derived from the master key so replicas
    /// sharing the master key verify each other's signatures.
    signing_key: [u8; 32],
}

impl std::fmt::Debug for Vault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Vault(..)")
    }
}

impl Vault {
    pub fn new(key: &[u8]) -> Result<Self> {
        let cipher = Aes256Gcm::new_from_slice(key)
            .map_err(|_| Error::of(Reason::MasterKeyInvalid, "the master key must be exactly 32 bytes"))?;
        let signing_key = hmac_sha256(key, b"cadenza signing key v1");
        Ok(Self { cipher, signing_key })
    }

    /// HMAC-SHA256 of `message` for `purpose` (purposes never share signatures).
    pub fn sign(&self, purpose: &str, message: &[u8]) -> [u8; 32] {
        let mut input = Vec::with_capacity(purpose.len() + 1 + message.len());
        input.extend_from_slice(purpose.as_bytes());
        input.push(0);
        input.extend_from_slice(message);
        hmac_sha256(&self.signing_key, &input)
    }

    /// Checks a signature made by [`Vault::sign`], in constant time.
    pub fn verify(&self, purpose: &str, message: &[u8], signature: &[u8]) -> bool {
        use subtle::ConstantTimeEq;
        signature.len() == 32 && bool::from(self.sign(purpose, message).ct_eq(signature))
    }

    /// Decodes a base64 master key (the `CADENZA_SECRET_KEY` format).
    pub fn from_base64(b64: &str) -> Result<Self> {
        let bytes = STANDARD
            .decode(b64.trim())
            .map_err(|_| Error::of(Reason::MasterKeyInvalid, "the master key must be base64 of 32 bytes"))?;
        Self::new(&bytes)
    }

    /// A new random master key, base64-encoded.
    pub fn generate_key_base64() -> String {
        STANDARD.encode(rand::random::<[u8; 32]>())
    }

    pub fn seal(&self, owner: &[&str], plaintext: &[u8]) -> Vec<u8> {
        let nonce_bytes: [u8; 12] = rand::random();
        let aad = owner.join("\0");
        let sealed = self
            .cipher
            .encrypt(&Nonce::from(nonce_bytes), Payload { msg: plaintext, aad: aad.as_bytes() })
            .unwrap_or_default();
        let mut out = Vec::with_capacity(1 + 12 + sealed.len());
        out.push(VERSION);
        out.extend_from_slice(&nonce_bytes);
        out.extend_from_slice(&sealed);
        out
    }

    /// Opens a value sealed for the same owner. Any tampering or a foreign owner is an error.
    pub fn open(&self, owner: &[&str], sealed: &[u8]) -> Result<Vec<u8>> {
        let bad = || Error::of(Reason::SecretUnreadable, "a stored secret could not be decrypted");
        if sealed.len() < 1 + 12 + 16 || sealed[0] != VERSION {
            return Err(bad());
        }
        let mut nonce = [0u8; 12];
        nonce.copy_from_slice(&sealed[1..13]);
        let aad = owner.join("\0");
        self.cipher.decrypt(&Nonce::from(nonce), Payload { msg: &sealed[13..], aad: aad.as_bytes() }).map_err(|_| bad())
    }
}

/// SHA-256 hex digest: how API-key tokens are stored. Tokens are 256-bit random values, so a fast
/// hash is the right tool (a slow KDF would be a CPU sink on every request).
fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    use hmac::{KeyInit, Mac};
    // HMAC takes keys of any length, so this cannot fail.
    let mut mac = <hmac::Hmac<sha2::Sha256> as KeyInit>::new_from_slice(key).expect("HMAC accepts any key length");
    mac.update(message);
    mac.finalize().into_bytes().into()
}

pub fn token_hash(token: &str) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let digest = Sha256::digest(token.as_bytes());
    let mut hex = String::with_capacity(64);
    for b in digest.iter() {
        hex.push(char::from(HEX[usize::from(b >> 4)]));
        hex.push(char::from(HEX[usize::from(b & 0xf)]));
    }
    hex
}

/// A new random token with a recognisable prefix, e.g. `cdz_sk_…`.
pub fn new_token(prefix: &str) -> String {
    format!("{prefix}{}", URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_binds_owner() {
        let v = Vault::new(&[7u8; 32]).expect("key");
        let sealed = v.seal(&["ws1", "s1"], b"hunter2");
        assert!(!sealed.windows(7).any(|w| w == b"hunter2"));
        assert_eq!(v.open(&["ws1", "s1"], &sealed).ok(), Some(b"hunter2".to_vec()));
        assert!(v.open(&["ws2", "s1"], &sealed).is_err());
        let other = Vault::new(&[8u8; 32]).expect("key");
        assert!(other.open(&["ws1", "s1"], &sealed).is_err());
        assert!(Vault::new(&[1u8; 16]).is_err());
    }

    #[test]
    fn tokens_hash_stably() {
        let t = new_token("cdz_sk_");
        assert!(t.starts_with("cdz_sk_") && t.len() > 40);
        assert_eq!(token_hash(&t), token_hash(&t));
        assert_ne!(token_hash(&t), token_hash("other"));
        assert_eq!(token_hash(&t).len(), 64);
        // SHA-256("abc"), the FIPS 180-2 test vector.
        assert_eq!(token_hash("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }
}
