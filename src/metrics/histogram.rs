//! A histogram of durations with fixed bucket bounds, counted with atomics (no lock, no
//! allocation), rendered as one series of the Prometheus text format.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// A histogram with fixed bucket bounds (seconds); each bucket counts the observations up
/// to its bound (cumulated when rendered).
pub(crate) struct Histogram<const N: usize> {
    bounds: [f64; N],
    /// The bounds in nanoseconds: an observation is placed without a float.
    limits: [u64; N],
    buckets: [AtomicU64; N],
    count: AtomicU64,
    /// Sum of observations in nanoseconds.
    sum_nanos: AtomicU64,
}

impl<const N: usize> Histogram<N> {
    pub(crate) const fn new(bounds: [f64; N]) -> Self {
        let mut limits = [0; N];
        let mut index = 0;
        while index < N {
            limits[index] = (bounds[index] * 1e9) as u64;
            index += 1;
        }
        Self {
            bounds,
            limits,
            buckets: [const { AtomicU64::new(0) }; N],
            count: AtomicU64::new(0),
            sum_nanos: AtomicU64::new(0),
        }
    }

    pub(crate) fn observe(&self, duration: Duration) {
        self.observe_nanos(u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX));
    }

    /// An observation of `nanos` nanoseconds.
    pub(crate) fn observe_nanos(&self, nanos: u64) {
        if let Some(index) = self.limits.iter().position(|limit| nanos <= *limit) {
            self.buckets[index].fetch_add(1, Ordering::Relaxed);
        }
        self.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// The series of `name` with `labels` (`a="x",b="y"`, or empty): buckets, sum and count.
    /// The HELP and TYPE lines are the caller's (one per family).
    pub(crate) fn render(&self, out: &mut String, name: &str, labels: &str) {
        let comma = if labels.is_empty() { "" } else { "," };
        let mut cumulative = 0;
        for (bound, bucket) in self.bounds.iter().zip(&self.buckets) {
            cumulative += bucket.load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "{name}_bucket{{{labels}{comma}le=\"{bound}\"}} {cumulative}"
            );
        }
        // Read after the buckets: observations that land meanwhile keep +Inf >= every bucket.
        let count = self.count().max(cumulative);
        let sum = self.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9;
        let _ = writeln!(out, "{name}_bucket{{{labels}{comma}le=\"+Inf\"}} {count}");
        let braces = |out: &mut String| {
            if !labels.is_empty() {
                let _ = write!(out, "{{{labels}}}");
            }
        };
        out.push_str(name);
        out.push_str("_sum");
        braces(out);
        let _ = writeln!(out, " {sum}");
        out.push_str(name);
        out.push_str("_count");
        braces(out);
        let _ = writeln!(out, " {count}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_cumulative_and_labels_come_first() {
        let histogram = Histogram::new([0.01, 0.1, 1.0]);
        histogram.observe(Duration::from_millis(5));
        histogram.observe(Duration::from_millis(50));
        histogram.observe(Duration::from_secs(3));
        let mut out = String::new();
        histogram.render(&mut out, "x_seconds", "service=\"web\"");
        assert_eq!(
            out,
            "x_seconds_bucket{service=\"web\",le=\"0.01\"} 1\n\
             x_seconds_bucket{service=\"web\",le=\"0.1\"} 2\n\
             x_seconds_bucket{service=\"web\",le=\"1\"} 2\n\
             x_seconds_bucket{service=\"web\",le=\"+Inf\"} 3\n\
             x_seconds_sum{service=\"web\"} 3.055\n\
             x_seconds_count{service=\"web\"} 3\n"
        );
        let mut bare = String::new();
        Histogram::new([1.0]).render(&mut bare, "y", "");
        assert_eq!(
            bare,
            "y_bucket{le=\"1\"} 0\ny_bucket{le=\"+Inf\"} 0\ny_sum 0\ny_count 0\n"
        );
    }
}
