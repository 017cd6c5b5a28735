//! The shape of a value sealed at rest, `sdenc:<len>:<key id>:<sealed>`:
//! what stores and the engine need to know of it without opening it (its
//! plaintext length, and that apps may not write look-alikes).

use serde_json::{Map, Value};

/// How every sealed value starts.
pub const PREFIX: &str = "sdenc:";

/// The plaintext length a sealed value carries, if `text` is one.
pub fn sealed_len(text: &str) -> Option<usize> {
    let rest = text.strip_prefix(PREFIX)?;
    let (len, _) = rest.split_once(':')?;
    len.parse().ok()
}

/// Whether `data` has a value an app may not write: a string that looks
/// sealed (only the sealing store makes those, and stores measure them by
/// the length they claim).
pub fn has_reserved_value(data: &Map<String, Value>) -> bool {
    data.values()
        .any(|v| matches!(v, Value::String(s) if s.starts_with(PREFIX)))
}
