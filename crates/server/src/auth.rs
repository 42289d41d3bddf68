//! Bearer-token check for the management API.
//!
//! Tokens are compared as SHA-256 digests in constant time, so neither the
//! content nor the length of the configured token leaks through timing.

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

#[derive(Clone)]
pub struct TokenCheck {
    digest: [u8; 32],
}

fn digest(s: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(s);
    h.finalize().into()
}

impl TokenCheck {
    pub fn new(token: &str) -> Self {
        TokenCheck {
            digest: digest(token.as_bytes()),
        }
    }

    /// True when the `Authorization` header value carries the token.
    pub fn accepts(&self, header: Option<&[u8]>) -> bool {
        let Some(token) = header.and_then(bearer_token) else {
            return false;
        };
        if token.is_empty() {
            return false;
        }
        digest(token).ct_eq(&self.digest).into()
    }
}

/// The token of a `Bearer` header value (scheme case-insensitive).
pub fn bearer_token(value: &[u8]) -> Option<&[u8]> {
    let value = value.trim_ascii();
    let (scheme, rest) = value.split_at_checked(6)?;
    if !scheme.eq_ignore_ascii_case(b"bearer") {
        return None;
    }
    let rest = rest.strip_prefix(b" ")?;
    Some(rest.trim_ascii())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_only_the_token() {
        let c = TokenCheck::new("s3cret");
        assert!(c.accepts(Some(b"Bearer s3cret")));
        assert!(c.accepts(Some(b"bearer s3cret")));
        assert!(!c.accepts(Some(b"Bearer s3cre")));
        assert!(!c.accepts(Some(b"Bearer ")));
        assert!(!c.accepts(Some(b"Basic s3cret")));
        assert!(!c.accepts(Some(b"Bearers3cret")));
        assert!(!c.accepts(None));
    }
}
