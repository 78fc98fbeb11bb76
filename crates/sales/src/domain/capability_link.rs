//! What every capability link (DECISIONS.md D7) is made of: `base64url(body ‖ tag)`, no
//! padding, where the tag is the first 16 bytes of HMAC-SHA256 over a context naming
//! the link's purpose followed by the body. Only the gateway (and the email sender)
//! makes and checks links, so a MAC under a key of the purpose's own is enough; a link
//! of one purpose never opens as another, since the context differs. No I/O here.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

const TAG_LEN: usize = 16;
/// Longer tokens are refused before decoding (every link is well under it).
const MAX_TOKEN_LEN: usize = 128;

/// The link of `body`: the body and its tag under `key`, for `context`.
pub(crate) fn seal(context: &[u8], key: &[u8; 32], body: &[u8]) -> String {
    let mut mac = <Hmac<Sha256>>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(context);
    mac.update(body);
    let mut bytes = body.to_vec();
    bytes.extend_from_slice(&mac.finalize().into_bytes()[..TAG_LEN]);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The body of `token`, if it is a link of `N` body bytes with a good tag under `key`
/// for `context`.
pub(crate) fn open<const N: usize>(context: &[u8], key: &[u8; 32], token: &str) -> Option<[u8; N]> {
    if token.len() > MAX_TOKEN_LEN {
        return None;
    }
    let bytes = URL_SAFE_NO_PAD.decode(token).ok()?;
    if bytes.len() != N + TAG_LEN {
        return None;
    }
    let (body, given) = bytes.split_at(N);
    let mut mac = <Hmac<Sha256>>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(context);
    mac.update(body);
    mac.verify_truncated_left(given).ok()?;
    body.try_into().ok()
}

/// Whether a link valid until `valid_until` (Unix seconds; 0: no end) is still valid at
/// `now`.
pub(crate) fn in_time(valid_until: u32, now: i64) -> bool {
    valid_until == 0 || now <= i64::from(valid_until)
}
