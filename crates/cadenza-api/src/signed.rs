//! Signed links: `<field>.<field>.<expires ms>.<signature>`, the credential of the requests that
//! carry no API key (the upload PUT, the media GET). The signature is the vault's HMAC under a
//! purpose of its own per kind of link, so a token minted for one never opens another. Fields
//! are the caller's, encoded so that they hold no `.`.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use cadenza_store::Reads;

/// A token for `fields` that opens until `expires_ms`.
pub fn seal(reads: &Reads, purpose: &str, fields: [&str; 2], expires_ms: i64) -> String {
    let body = format!("{}.{}.{expires_ms}", fields[0], fields[1]);
    let sig = URL_SAFE_NO_PAD.encode(reads.sign(purpose, body.as_bytes()));
    format!("{body}.{sig}")
}

/// The fields and expiry of a token sealed for `purpose`; `None` for anything else (forged,
/// altered, cut short, another purpose's). Whether it has expired is the caller's to say: each
/// kind of link has its own reason for that.
pub fn open<'a>(reads: &Reads, purpose: &str, token: &'a str) -> Option<([&'a str; 2], i64)> {
    let (body, sig) = token.rsplit_once('.')?;
    let sig = URL_SAFE_NO_PAD.decode(sig).ok()?;
    if !reads.verify_signature(purpose, body.as_bytes(), &sig) {
        return None;
    }
    let mut parts = body.splitn(3, '.');
    let (a, b, expires) = (parts.next()?, parts.next()?, parts.next()?);
    Some(([a, b], expires.parse().ok()?))
}
