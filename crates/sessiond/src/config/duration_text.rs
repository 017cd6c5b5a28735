//! Durations as text: `"900ms"`, `"30s"`, `"15m"`, `"12h"`, `"30d"` (any
//! `humantime` duration is read; the shortest exact single unit is written).

use std::time::Duration;

use serde::{Deserialize, Deserializer, Serializer};

/// Parse a duration, or say what is accepted.
pub fn parse(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if text.is_empty() {
        return Err(super::DURATION_EXPECTED.to_owned());
    }
    humantime::parse_duration(text).map_err(|_| super::DURATION_EXPECTED.to_owned())
}

/// Write a duration in the largest unit that holds it exactly.
pub fn format(d: Duration) -> String {
    if !d.subsec_nanos().is_multiple_of(1_000_000) {
        return humantime::format_duration(d).to_string();
    }
    let ms = d.as_millis();
    if ms == 0 {
        return "0s".to_owned();
    }
    const UNITS: [(u128, &str); 5] = [
        (86_400_000, "d"),
        (3_600_000, "h"),
        (60_000, "m"),
        (1_000, "s"),
        (1, "ms"),
    ];
    for (unit, suffix) in UNITS {
        if ms.is_multiple_of(unit) {
            return format!("{}{suffix}", ms / unit);
        }
    }
    format!("{ms}ms")
}

/// `serde(with)` serializer.
pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format(*d))
}

/// `serde(with)` deserializer.
pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(d)?;
    parse(&text).map_err(|e| serde::de::Error::custom(format!("{text:?}: {e}")))
}

/// `serde(with)` for an optional duration.
pub mod optional {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    /// `serde(with)` serializer.
    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => super::serialize(d, s),
            None => s.serialize_none(),
        }
    }

    /// `serde(with)` deserializer.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        match Option::<String>::deserialize(d)? {
            None => Ok(None),
            Some(text) => super::parse(&text)
                .map(Some)
                .map_err(|e| serde::de::Error::custom(format!("{text:?}: {e}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::DURATION_EXPECTED;
    use proptest::prelude::*;

    #[test]
    fn duration_text_examples() {
        for (text, d) in [
            ("900ms", Duration::from_millis(900)),
            ("30s", Duration::from_secs(30)),
            ("15m", Duration::from_secs(900)),
            ("12h", Duration::from_secs(43_200)),
            ("30d", Duration::from_secs(30 * 86_400)),
        ] {
            assert_eq!(parse(text), Ok(d));
            assert_eq!(format(d), text);
        }
        assert_eq!(format(Duration::from_secs(90)), "90s");
        assert_eq!(format(Duration::ZERO), "0s");
        assert_eq!(parse("1h 30m"), Ok(Duration::from_secs(5400)));
        for bad in ["", " ", "15 parsecs", "s", "-1s", "1.5.5s"] {
            assert_eq!(parse(bad), Err(DURATION_EXPECTED.to_owned()), "{bad:?}");
        }
    }

    proptest! {
        #[test]
        fn duration_text_never_panics(text in any::<String>()) {
            let _ = parse(&text);
        }

        #[test]
        fn duration_text_never_panics_on_near_misses(text in "[0-9 .]{0,12}[a-zµ]{0,8}[0-9]{0,3}") {
            let _ = parse(&text);
        }

        #[test]
        fn duration_text_round_trips(secs in 0u64..(10 * 400 * 86_400), nanos in 0u32..1_000_000_000) {
            let d = Duration::new(secs, nanos);
            prop_assert_eq!(parse(&format(d)), Ok(d));
            let ms = Duration::from_millis(secs * 1000 + u64::from(nanos / 1_000_000));
            prop_assert_eq!(parse(&format(ms)), Ok(ms));
        }
    }
}
