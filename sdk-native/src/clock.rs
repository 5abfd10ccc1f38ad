//! The session's clock for this process: [`now`] reads the monotonic clock as a
//! [`lifeline_core::Instant`] (microseconds since the first reading in this process), and
//! [`to_std`] turns an instant the session reports (such as `State::Reconnecting`'s
//! `next_attempt_at`) back into a `std::time::Instant`.
//!
//! Only the conversion lives here; what the instants mean is the session's business.

use lifeline_core::Instant;
use std::sync::OnceLock;
use std::time::Duration;

/// The process's origin: the first reading of the monotonic clock.
fn origin() -> std::time::Instant {
    static ORIGIN: OnceLock<std::time::Instant> = OnceLock::new();
    *ORIGIN.get_or_init(std::time::Instant::now)
}

/// Now, on the session's clock.
pub fn now() -> Instant {
    let origin = origin();
    let micros = origin.elapsed().as_micros();
    Instant::from_micros(u64::try_from(micros).unwrap_or(u64::MAX))
}

/// A session instant on the standard library's monotonic clock. An instant too far ahead to
/// represent (only a deadline of "never" is) becomes a year from now.
pub fn to_std(at: Instant) -> std::time::Instant {
    origin()
        .checked_add(Duration::from_micros(at.as_micros()))
        .unwrap_or_else(|| std::time::Instant::now() + Duration::from_secs(86_400 * 365))
}

/// A session instant as a tokio instant, to sleep until.
pub(crate) fn to_tokio(at: Instant) -> tokio::time::Instant {
    tokio::time::Instant::from_std(to_std(at))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_deadline_maps_back_to_the_same_point_on_the_clock() {
        let start = now();
        let deadline = start + Duration::from_millis(250);
        let tokio_deadline = to_tokio(deadline);
        let tokio_start = to_tokio(start);
        assert_eq!(tokio_deadline - tokio_start, Duration::from_millis(250));
        assert_eq!(
            to_std(deadline).saturating_duration_since(to_std(start)),
            Duration::from_millis(250)
        );
        assert!(now() >= start);
    }
}
