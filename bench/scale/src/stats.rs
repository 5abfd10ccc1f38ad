//! Figures from raw samples: percentiles of latencies, and arrivals counted per 100 ms with their
//! peak ÷ mean.

/// The `p`th percentile (0–100) of `sorted` by nearest rank; 0 for no samples.
pub fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Arrivals per 100 ms from `start_us` (every arrival at or after it; earlier ones go in the
/// first bucket) to the last arrival.
pub struct Arrivals {
    pub buckets: Vec<usize>,
}

/// The width of one bucket, in microseconds.
pub const BUCKET_US: u64 = 100_000;

impl Arrivals {
    pub fn count(start_us: u64, at_us: &[u64]) -> Arrivals {
        let last = at_us.iter().copied().max().unwrap_or(start_us);
        let n = (last.saturating_sub(start_us) / BUCKET_US) as usize + 1;
        let mut buckets = vec![0; n];
        for &t in at_us {
            buckets[(t.saturating_sub(start_us) / BUCKET_US) as usize] += 1;
        }
        Arrivals { buckets }
    }

    pub fn peak(&self) -> usize {
        self.buckets.iter().copied().max().unwrap_or(0)
    }

    /// Arrivals per bucket over the buckets from the first non-empty one to the last.
    pub fn mean(&self) -> f64 {
        let first = self.buckets.iter().position(|b| *b > 0).unwrap_or(0);
        let span = &self.buckets[first..];
        span.iter().sum::<usize>() as f64 / span.len().max(1) as f64
    }

    pub fn peak_over_mean(&self) -> f64 {
        self.peak() as f64 / self.mean().max(f64::MIN_POSITIVE)
    }

    /// The buckets as `a,b,c` (for the record).
    pub fn histogram(&self) -> String {
        let parts: Vec<String> = self.buckets.iter().map(|b| b.to_string()).collect();
        parts.join(",")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_by_nearest_rank() {
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&v, 50.0), 50);
        assert_eq!(percentile(&v, 99.0), 99);
        assert_eq!(percentile(&v, 100.0), 100);
        assert_eq!(percentile(&[], 50.0), 0);
    }

    #[test]
    fn arrivals_peak_over_mean_ignores_the_quiet_start() {
        // Nothing for 300 ms (the outage), then 10, 30, 20 per 100 ms.
        let mut at = vec![];
        at.extend(std::iter::repeat_n(300_000, 10));
        at.extend(std::iter::repeat_n(400_000, 30));
        at.extend(std::iter::repeat_n(500_000, 20));
        let a = Arrivals::count(0, &at);
        assert_eq!(a.buckets, vec![0, 0, 0, 10, 30, 20]);
        assert_eq!(a.peak(), 30);
        assert!((a.mean() - 20.0).abs() < 1e-9);
        assert!((a.peak_over_mean() - 1.5).abs() < 1e-9);
    }
}
