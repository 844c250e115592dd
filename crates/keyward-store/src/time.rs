//! Timestamps are stored as Unix milliseconds so both backends share one SQL dialect.

use chrono::{DateTime, TimeZone, Utc};

pub(crate) fn to_ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

pub(crate) fn opt_to_ms(t: Option<DateTime<Utc>>) -> Option<i64> {
    t.map(to_ms)
}

pub(crate) fn from_ms(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms).single().unwrap_or(DateTime::<Utc>::MIN_UTC)
}

pub(crate) fn opt_from_ms(ms: Option<i64>) -> Option<DateTime<Utc>> {
    ms.map(from_ms)
}

/// The current time at the precision the database keeps, so a record returned by a
/// write equals the same record read back.
pub(crate) fn now() -> DateTime<Utc> {
    from_ms(to_ms(Utc::now()))
}

/// `t` at the precision the database keeps.
pub(crate) fn truncate(t: DateTime<Utc>) -> DateTime<Utc> {
    from_ms(to_ms(t))
}
