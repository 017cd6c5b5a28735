//! A list of strings, also read from one string of comma-separated entries.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

#[derive(Deserialize)]
#[serde(untagged)]
enum Written {
    One(String),
    Many(Vec<String>),
}

/// `serde(with)` serializer: a list.
pub fn serialize<S: Serializer>(list: &[String], s: S) -> Result<S::Ok, S::Error> {
    list.serialize(s)
}

/// `serde(with)` deserializer: a list, or `"a, b"`.
pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    Ok(match Written::deserialize(d)? {
        Written::One(text) => text
            .split(',')
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .map(str::to_owned)
            .collect(),
        Written::Many(list) => list,
    })
}
