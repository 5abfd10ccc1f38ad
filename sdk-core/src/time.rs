//! The session's time: an [`Instant`] is a point on the driver's monotonic clock, counted in
//! microseconds from an origin the driver picks (its start, the page's `performance.now()` zero,
//! a simulation's epoch). The core never reads a clock: every instant comes in from the driver.
//!
//! A plain `u64` rather than `std::time::Instant`: it is what the browser's clock gives, it can be
//! made up in tests, and its arithmetic is one integer operation in the `.wasm`. Arithmetic
//! saturates instead of panicking. Nothing but the type lives here.

use std::ops::{Add, AddAssign, Sub};
use std::time::Duration;

/// A point in time, in microseconds since the driver's origin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Instant(u64);

/// A duration in whole microseconds, saturating at `u64::MAX` (about 584,000 years). Never
/// inlined: every `instant + duration` in the session calls it, and one copy is far smaller in
/// the `.wasm` than an overflow-checked multiplication at each call site.
#[inline(never)]
fn micros(d: Duration) -> u64 {
    d.as_secs()
        .saturating_mul(1_000_000)
        .saturating_add(u64::from(d.subsec_micros()))
}

impl Instant {
    /// The instant `micros` microseconds after the origin.
    pub const fn from_micros(micros: u64) -> Self {
        Instant(micros)
    }

    /// Microseconds since the origin.
    pub const fn as_micros(self) -> u64 {
        self.0
    }

    /// The time from `earlier` to `self`, or zero when `earlier` is later.
    pub fn saturating_duration_since(self, earlier: Instant) -> Duration {
        Duration::from_micros(self.0.saturating_sub(earlier.0))
    }
}

impl Add<Duration> for Instant {
    type Output = Instant;
    fn add(self, d: Duration) -> Instant {
        Instant(self.0.saturating_add(micros(d)))
    }
}

impl AddAssign<Duration> for Instant {
    fn add_assign(&mut self, d: Duration) {
        *self = *self + d;
    }
}

impl Sub<Duration> for Instant {
    type Output = Instant;
    fn sub(self, d: Duration) -> Instant {
        Instant(self.0.saturating_sub(micros(d)))
    }
}

impl Sub<Instant> for Instant {
    type Output = Duration;
    /// Like [`Instant::saturating_duration_since`].
    fn sub(self, earlier: Instant) -> Duration {
        self.saturating_duration_since(earlier)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arithmetic_saturates_instead_of_panicking() {
        let t = Instant::from_micros(1_500_000);
        assert_eq!(
            t + Duration::from_millis(1),
            Instant::from_micros(1_501_000)
        );
        assert_eq!(t - Duration::from_secs(10), Instant::from_micros(0));
        assert_eq!(
            Instant::from_micros(u64::MAX) + Duration::MAX,
            Instant::from_micros(u64::MAX)
        );
        assert_eq!(t - Instant::from_micros(2_000_000), Duration::ZERO);
        assert_eq!(
            t.saturating_duration_since(Instant::from_micros(500_000)),
            Duration::from_secs(1)
        );
        // Sub-microsecond parts are dropped.
        assert_eq!(t + Duration::from_nanos(999), t);
        let mut u = t;
        u += Duration::from_micros(5);
        assert_eq!(u.as_micros(), 1_500_005);
    }
}
