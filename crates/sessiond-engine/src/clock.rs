//! Time as the engine sees it: millisecond timestamps and a clock the engine is
//! given, so tests can move time forward instead of sleeping.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch (UTC). Serialized as an RFC 3339 string.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(i64);

impl Timestamp {
    /// The latest representable instant, 9999-12-31T23:59:59.999Z; later
    /// deadlines are clamped to it so every timestamp has an RFC 3339 form.
    pub const MAX: Timestamp = Timestamp(253_402_300_799_999);

    /// A timestamp from milliseconds since the Unix epoch.
    pub const fn from_millis(ms: i64) -> Self {
        Self(ms)
    }

    /// Milliseconds since the Unix epoch.
    pub const fn as_millis(self) -> i64 {
        self.0
    }

    /// This instant plus `d`, saturating instead of overflowing.
    pub fn plus(self, d: Duration) -> Self {
        let ms = i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        Self(self.0.saturating_add(ms).min(Self::MAX.0))
    }

    /// The same instant as a [`SystemTime`], clamped to the epoch and [`Timestamp::MAX`].
    pub fn to_system_time(self) -> SystemTime {
        let ms = self.0.clamp(0, Self::MAX.0);
        UNIX_EPOCH + Duration::from_millis(u64::try_from(ms).unwrap_or(0))
    }

    /// RFC 3339 in UTC with millisecond precision, e.g. `2026-11-23T09:00:00.000Z`
    /// (clamped like [`Timestamp::to_system_time`], so it never fails).
    pub fn to_rfc3339(self) -> String {
        self.to_string()
    }

    /// [`Timestamp::to_rfc3339`] as 24 ASCII bytes on the stack (the clamp
    /// keeps the year within four digits): answers carry five timestamps
    /// each, so this skips the formatting machinery and the heap.
    fn rfc3339_text(self) -> [u8; 24] {
        let ms = self.0.clamp(0, Self::MAX.0);
        let (days, ms_of_day) = (ms.div_euclid(86_400_000), ms.rem_euclid(86_400_000));
        let (year, month, day) = civil_from_days(days);
        let (secs, millis) = (ms_of_day / 1000, ms_of_day % 1000);
        let mut out = *b"0000-00-00T00:00:00.000Z";
        put_digits(&mut out[0..4], year);
        put_digits(&mut out[5..7], month);
        put_digits(&mut out[8..10], day);
        put_digits(&mut out[11..13], secs / 3600);
        put_digits(&mut out[14..16], secs / 60 % 60);
        put_digits(&mut out[17..19], secs % 60);
        put_digits(&mut out[20..23], millis);
        out
    }
}

/// The proleptic Gregorian (year, month, day) of `days` since 1970-01-01
/// (H. Hinnant's `civil_from_days`), for days >= 0.
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Write `n` as decimal digits filling `slot`, zero-padded (`n` fits).
fn put_digits(slot: &mut [u8], mut n: i64) {
    for byte in slot.iter_mut().rev() {
        // A digit 0..=9: the cast cannot truncate.
        *byte = b'0' + n.rem_euclid(10) as u8;
        n /= 10;
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = self.rfc3339_text();
        f.write_str(std::str::from_utf8(&text).map_err(|_| fmt::Error)?)
    }
}

impl serde::Serialize for Timestamp {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let text = self.rfc3339_text();
        let text = std::str::from_utf8(&text)
            .map_err(|_| serde::ser::Error::custom("timestamp is not ASCII"))?;
        s.serialize_str(text)
    }
}

impl<'de> serde::Deserialize<'de> for Timestamp {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        let t = humantime::parse_rfc3339_weak(&text).map_err(serde::de::Error::custom)?;
        let ms = t
            .duration_since(UNIX_EPOCH)
            .map_err(serde::de::Error::custom)?
            .as_millis();
        Ok(Self(i64::try_from(ms).map_err(serde::de::Error::custom)?))
    }
}

/// A source of the current time.
pub trait Clock: Send + Sync + fmt::Debug {
    /// The current time.
    fn now(&self) -> Timestamp;
}

/// The real wall clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        let ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or(0);
        Timestamp(i64::try_from(ms).unwrap_or(i64::MAX))
    }
}

/// A clock that only moves when told to; starts at the real current time so
/// stores with server-side TTLs see sensible deadlines.
#[derive(Clone, Debug)]
pub struct ManualClock(Arc<AtomicI64>);

impl Default for ManualClock {
    fn default() -> Self {
        Self::new()
    }
}

impl ManualClock {
    /// A manual clock set to the current wall-clock time.
    pub fn new() -> Self {
        Self(Arc::new(AtomicI64::new(SystemClock.now().as_millis())))
    }

    /// Move the clock forward by `d`.
    pub fn advance(&self, d: Duration) {
        let ms = i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        self.0.fetch_add(ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        Timestamp(self.0.load(Ordering::SeqCst))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_round_trip() {
        let t = Timestamp::from_millis(1_795_000_000_123);
        let json = serde_json::to_string(&t).unwrap();
        assert_eq!(json, "\"2026-11-18T11:06:40.123Z\"");
        let back: Timestamp = serde_json::from_str(&json).unwrap();
        assert_eq!(back, t);
    }

    proptest::proptest! {
        #[test]
        fn rfc3339_text_matches_humantime(ms in 0..=Timestamp::MAX.0) {
            let t = Timestamp::from_millis(ms);
            let expected = humantime::format_rfc3339_millis(t.to_system_time()).to_string();
            proptest::prop_assert_eq!(t.to_rfc3339(), expected);
        }
    }

    #[test]
    fn rfc3339_text_at_calendar_edges() {
        for (ms, text) in [
            (0, "1970-01-01T00:00:00.000Z"),
            (951_782_400_000, "2000-02-29T00:00:00.000Z"),
            (4_107_542_399_999, "2100-02-28T23:59:59.999Z"),
            (4_107_542_400_000, "2100-03-01T00:00:00.000Z"),
            (1_798_761_599_999, "2026-12-31T23:59:59.999Z"),
        ] {
            assert_eq!(Timestamp::from_millis(ms).to_rfc3339(), text);
        }
    }

    #[test]
    fn extreme_timestamps_format_without_panicking() {
        assert_eq!(Timestamp::MAX.to_rfc3339(), "9999-12-31T23:59:59.999Z");
        assert_eq!(
            Timestamp::from_millis(i64::MAX).to_rfc3339(),
            "9999-12-31T23:59:59.999Z"
        );
        assert_eq!(
            Timestamp::from_millis(-5).to_rfc3339(),
            "1970-01-01T00:00:00.000Z"
        );
        assert_eq!(
            Timestamp::from_millis(0).plus(Duration::MAX),
            Timestamp::MAX
        );
    }

    #[test]
    fn manual_clock_moves_only_when_told() {
        let c = ManualClock::new();
        let a = c.now();
        c.advance(Duration::from_secs(90));
        assert_eq!(c.now().as_millis() - a.as_millis(), 90_000);
    }
}
