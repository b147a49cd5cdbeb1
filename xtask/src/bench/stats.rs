//! Summaries of repeated measurements: median, 95th percentile, maximum.

use serde::Serialize;

/// What a set of samples of one measurement looks like.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Summary {
    /// Number of samples.
    pub n: usize,
    pub median: f64,
    /// Nearest-rank 95th percentile (with few samples this is the maximum).
    pub p95: f64,
    pub max: f64,
}

impl Summary {
    /// `None` when there are no samples (a scenario that produced nothing
    /// must show up as missing, not as zero).
    pub fn of(samples: &[f64]) -> Option<Self> {
        let mut sorted: Vec<f64> = samples.iter().copied().filter(|v| v.is_finite()).collect();
        if sorted.is_empty() {
            return None;
        }
        sorted.sort_by(f64::total_cmp);
        let n = sorted.len();
        let median = if n % 2 == 1 {
            sorted[n / 2]
        } else {
            (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
        };
        Some(Self {
            n,
            median,
            p95: nearest_rank(&sorted, 0.95),
            max: sorted[n - 1],
        })
    }
}

/// The smallest sample with at least `fraction` of the samples at or below
/// it; `sorted` must be sorted and non-empty.
fn nearest_rank(sorted: &[f64], fraction: f64) -> f64 {
    let rank = (fraction * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn odd_and_even_medians() {
        assert_eq!(Summary::of(&[3.0, 1.0, 2.0]).unwrap().median, 2.0);
        assert_eq!(Summary::of(&[4.0, 1.0, 2.0, 3.0]).unwrap().median, 2.5);
    }

    #[test]
    fn p95_is_nearest_rank() {
        let samples: Vec<f64> = (1..=20).map(f64::from).collect();
        let s = Summary::of(&samples).unwrap();
        assert_eq!(s.p95, 19.0);
        assert_eq!(s.max, 20.0);
        assert_eq!(s.n, 20);
        assert_eq!(Summary::of(&[5.0, 7.0, 6.0]).unwrap().p95, 7.0);
    }

    #[test]
    fn empty_and_non_finite_samples() {
        assert!(Summary::of(&[]).is_none());
        assert!(Summary::of(&[f64::NAN]).is_none());
        assert_eq!(Summary::of(&[f64::NAN, 1.0]).unwrap().n, 1);
    }
}
