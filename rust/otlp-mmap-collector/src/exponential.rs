//! `ExponentialBuckets`: the base-2 exponential histogram aggregation of the
//! OpenTelemetry SDKs: values map to buckets of `base = 2^(2^-scale)` with
//! upper-inclusive bounds; when the values need more than `max_buckets`
//! buckets, the scale is lowered (each step merges pairs of buckets).

use std::collections::BTreeMap;

/// One sign's buckets: index -> count.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Buckets {
    /// Values counted per bucket index, for the non-empty buckets only:
    /// index `i` holds the values whose absolute value is in
    /// `(base^i, base^(i+1)]`.
    pub counts: BTreeMap<i32, u64>,
}

impl Buckets {
    fn range(&self) -> Option<(i32, i32)> {
        Some((
            *self.counts.keys().next()?,
            *self.counts.keys().next_back()?,
        ))
    }

    fn downscale(&mut self, by: u32) {
        if by == 0 {
            return;
        }
        let old = std::mem::take(&mut self.counts);
        for (i, c) in old {
            let n = self.counts.entry(i >> by).or_default();
            *n = n.saturating_add(c);
        }
    }

    /// `(offset, dense counts)` as OTLP wants them. Buckets spanning more
    /// than the largest `max_buckets` (16384; a histogram made by
    /// [`ExponentialBuckets::record`] and
    /// [`ExponentialBuckets::from_parts`] never does) are refused, not
    /// allocated: the counts come out empty.
    pub fn dense(&self) -> (i32, Vec<u64>) {
        let Some((lo, hi)) = self.range() else {
            return (0, Vec::new());
        };
        let width = i64::from(hi) - i64::from(lo) + 1;
        if width > MAX_BUCKETS as i64 {
            return (lo, Vec::new());
        }
        let mut v = vec![0u64; width as usize];
        for (&i, &c) in &self.counts {
            v[(i - lo) as usize] = c;
        }
        (lo, v)
    }
}

/// An exponential histogram of one series.
#[derive(Debug, Clone, PartialEq)]
pub struct ExponentialBuckets {
    /// Current scale (`base = 2^(2^-scale)`): starts at the `max_scale` given
    /// to [`new`](Self::new) and is only lowered, when the values need more
    /// than `max_buckets` buckets of one sign.
    pub scale: i32,
    max_buckets: usize,
    /// Values recorded that were exactly 0 (either sign).
    pub zero_count: u64,
    /// Buckets of the positive values.
    pub positive: Buckets,
    /// Buckets of the negative values, indexed by absolute value.
    pub negative: Buckets,
    /// Values recorded (finite ones; NaN and infinities are not recorded).
    pub count: u64,
    /// Sum of the values recorded (0 while empty).
    pub sum: f64,
    /// Smallest value recorded (`f64::INFINITY` while empty).
    pub min: f64,
    /// Largest value recorded (`f64::NEG_INFINITY` while empty).
    pub max: f64,
}

/// Smallest scale the mapping supports.
const MIN_SCALE: i32 = -10;
/// Largest scale the mapping supports.
const MAX_SCALE: i32 = 20;
/// Most buckets per sign a histogram may be given.
const MAX_BUCKETS: usize = 16384;

impl ExponentialBuckets {
    /// An empty histogram starting at `max_scale` (clamped to -10..=20) with at most
    /// `max_buckets` buckets per sign (at least 2). Zeros/negatives give SDK defaults (160, 20).
    pub fn new(max_buckets: i64, max_scale: i64) -> Self {
        let max_buckets = if max_buckets <= 0 {
            160
        } else {
            max_buckets.clamp(2, MAX_BUCKETS as i64)
        } as usize;
        let scale = if max_scale == 0 {
            20
        } else {
            max_scale.clamp(MIN_SCALE as i64, MAX_SCALE as i64)
        } as i32;
        ExponentialBuckets {
            scale,
            max_buckets,
            zero_count: 0,
            positive: Buckets::default(),
            negative: Buckets::default(),
            count: 0,
            sum: 0.0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
        }
    }

    /// Most buckets per sign.
    pub fn max_buckets(&self) -> usize {
        self.max_buckets
    }

    /// Records one value. NaN and infinities are ignored, as the SDKs do.
    pub fn record(&mut self, v: f64) {
        if !v.is_finite() {
            return;
        }
        self.count = self.count.saturating_add(1);
        self.sum += v;
        self.min = self.min.min(v);
        self.max = self.max.max(v);
        if v == 0.0 {
            self.zero_count = self.zero_count.saturating_add(1);
            return;
        }
        let abs = v.abs();
        let mut index = bucket_index(abs, self.scale);
        let positive = v > 0.0;
        // Lower the scale until this index fits with the existing buckets.
        let (lo, hi) = {
            let b = if positive {
                &self.positive
            } else {
                &self.negative
            };
            match b.range() {
                Some((lo, hi)) => (lo.min(index), hi.max(index)),
                None => (index, index),
            }
        };
        let mut change = 0u32;
        let (mut l, mut h) = (lo as i64, hi as i64);
        while h - l + 1 > self.max_buckets as i64 && self.scale - (change as i32) > MIN_SCALE {
            l >>= 1;
            h >>= 1;
            change += 1;
        }
        if change > 0 {
            self.scale -= change as i32;
            self.positive.downscale(change);
            self.negative.downscale(change);
            index = bucket_index(abs, self.scale);
        }
        let b = if positive {
            &mut self.positive
        } else {
            &mut self.negative
        };
        let n = b.counts.entry(index).or_default();
        *n = n.saturating_add(1);
    }
}

/// What an OTLP exponential histogram data point holds, to restore an
/// [`ExponentialBuckets`] from (a checkpoint).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ExponentialParts {
    /// Scale of the buckets.
    pub scale: i32,
    /// Values that were exactly 0.
    pub zero_count: u64,
    /// Positive buckets: offset (index of the first) and dense counts.
    pub positive: (i32, Vec<u64>),
    /// Negative buckets, by absolute value: offset and dense counts.
    pub negative: (i32, Vec<u64>),
    /// Values recorded.
    pub count: u64,
    /// Sum of the values.
    pub sum: f64,
    /// Smallest value (`None` while empty).
    pub min: Option<f64>,
    /// Largest value (`None` while empty).
    pub max: Option<f64>,
}

impl Buckets {
    /// Sparse buckets from `(offset, dense counts)` at `scale`; `None` when
    /// they span more than `max_buckets` or past the indexes finite values
    /// reach at that scale.
    fn from_dense(
        offset: i32,
        counts: &[u64],
        max_buckets: usize,
        scale: i32,
    ) -> Option<(Self, u64)> {
        if counts.len() > max_buckets {
            return None;
        }
        if !counts.is_empty() {
            let last = i64::from(offset) + counts.len() as i64 - 1;
            let (lo, hi) = reachable(scale);
            if i64::from(offset) < i64::from(lo) || last > i64::from(hi) {
                return None;
            }
        }
        let mut out = Buckets::default();
        let mut total = 0u64;
        for (i, &c) in counts.iter().enumerate() {
            if c == 0 {
                continue;
            }
            let index = offset.checked_add(i32::try_from(i).ok()?)?;
            out.counts.insert(index, c);
            total = total.checked_add(c)?;
        }
        Some((out, total))
    }
}

impl ExponentialBuckets {
    /// The histogram `parts` describe, for a metric defined with
    /// `max_buckets` and `max_scale` (as given to [`new`](Self::new));
    /// `None` when they do not fit it: a scale above `max_scale` or below the
    /// smallest, more buckets than `max_buckets`, or counts that do not add up.
    pub fn from_parts(max_buckets: i64, max_scale: i64, parts: &ExponentialParts) -> Option<Self> {
        let mut h = ExponentialBuckets::new(max_buckets, max_scale);
        if parts.scale > h.scale || parts.scale < MIN_SCALE {
            return None;
        }
        let (positive, p) = Buckets::from_dense(
            parts.positive.0,
            &parts.positive.1,
            h.max_buckets,
            parts.scale,
        )?;
        let (negative, n) = Buckets::from_dense(
            parts.negative.0,
            &parts.negative.1,
            h.max_buckets,
            parts.scale,
        )?;
        if p.checked_add(n)?.checked_add(parts.zero_count)? != parts.count {
            return None;
        }
        h.scale = parts.scale;
        h.zero_count = parts.zero_count;
        h.positive = positive;
        h.negative = negative;
        h.count = parts.count;
        if parts.count > 0 {
            h.sum = parts.sum;
            h.min = parts.min?;
            h.max = parts.max?;
        }
        Some(h)
    }
}

/// The first and last bucket indexes finite nonzero values reach at `scale`
/// (from the smallest subnormal to `f64::MAX`).
fn reachable(scale: i32) -> (i32, i32) {
    (
        bucket_index(f64::from_bits(1), scale),
        bucket_index(f64::MAX, scale),
    )
}

/// The bucket of `v > 0` at `scale`: bucket `i` holds `(base^i, base^(i+1)]`.
pub fn bucket_index(v: f64, scale: i32) -> i32 {
    let (frac, exp) = frexp(v);
    if scale <= 0 {
        // Exact powers of two belong to the bucket below (upper-inclusive bounds).
        let correction = if frac == 0.5 { 2 } else { 1 };
        return (exp - correction) >> (-scale);
    }
    let factor = f64::from(1u32 << scale) / std::f64::consts::LN_2;
    let idx = (exp << scale) + (frac.ln() * factor) as i32 - 1;
    if frac == 0.5 {
        // v = 2^(exp-1) exactly: the last bucket below that power of two.
        return ((exp - 1) << scale) - 1;
    }
    idx
}

/// `v = frac * 2^exp` with `frac` in [0.5, 1), for finite `v > 0`.
fn frexp(v: f64) -> (f64, i32) {
    let bits = v.to_bits();
    let exp_bits = ((bits >> 52) & 0x7ff) as i32;
    if exp_bits == 0 {
        // Subnormal: scale up first.
        let (f, e) = frexp(v * f64::from_bits(0x4350_0000_0000_0000)); // 2^54
        return (f, e - 54);
    }
    let exp = exp_bits - 1022;
    let frac = f64::from_bits((bits & !(0x7ffu64 << 52)) | (1022u64 << 52));
    (frac, exp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn powers_of_two_are_upper_inclusive() {
        // At scale 0, bucket i is (2^i, 2^(i+1)].
        assert_eq!(bucket_index(1.0, 0), -1);
        assert_eq!(bucket_index(2.0, 0), 0);
        assert_eq!(bucket_index(3.0, 0), 1);
        assert_eq!(bucket_index(4.0, 0), 1);
        assert_eq!(bucket_index(4.0, 1), 3);
        assert_eq!(bucket_index(4.0, -1), 0);
        assert_eq!(frexp(8.0), (0.5, 4));
    }

    #[test]
    fn parts_give_back_the_same_histogram() {
        let mut h = ExponentialBuckets::new(4, 20);
        for v in [1.0, 2.0, 4.0, 8.0, 16.0, 1000.0, -3.0, 0.0] {
            h.record(v);
        }
        let parts = ExponentialParts {
            scale: h.scale,
            zero_count: h.zero_count,
            positive: h.positive.dense(),
            negative: h.negative.dense(),
            count: h.count,
            sum: h.sum,
            min: Some(h.min),
            max: Some(h.max),
        };
        let mut back = ExponentialBuckets::from_parts(4, 20, &parts).unwrap();
        assert_eq!(back, h);
        // And it goes on as the original does.
        back.record(5000.0);
        h.record(5000.0);
        assert_eq!(back, h);
        // Parts that do not fit the definition are refused.
        let wide = ExponentialParts {
            positive: (0, vec![1; 5]),
            count: 5,
            ..parts.clone()
        };
        assert_eq!(ExponentialBuckets::from_parts(4, 20, &wide), None);
        let finer = ExponentialParts {
            scale: 5,
            ..parts.clone()
        };
        assert_eq!(ExponentialBuckets::from_parts(4, 2, &finer), None);
        let miscounted = ExponentialParts {
            count: parts.count + 1,
            ..parts.clone()
        };
        assert_eq!(ExponentialBuckets::from_parts(4, 20, &miscounted), None);
        let overflow = ExponentialParts {
            positive: (i32::MAX, vec![1, 1]),
            count: 2,
            zero_count: 0,
            negative: (0, Vec::new()),
            ..parts
        };
        assert_eq!(ExponentialBuckets::from_parts(4, 20, &overflow), None);
    }

    #[test]
    fn parts_out_of_the_reach_of_finite_values_are_refused() {
        // At scale -10 finite values reach buckets -2..=0 only.
        assert_eq!(reachable(-10), (-2, 0));
        let far = |offset: i32| ExponentialParts {
            scale: -10,
            positive: (offset, vec![1]),
            count: 1,
            sum: 1.0,
            min: Some(1.0),
            max: Some(1.0),
            ..Default::default()
        };
        assert_eq!(
            ExponentialBuckets::from_parts(160, 20, &far(i32::MAX - 1)),
            None
        );
        assert_eq!(ExponentialBuckets::from_parts(160, 20, &far(1)), None);
        assert_eq!(ExponentialBuckets::from_parts(160, 20, &far(-3)), None);
        let mut h = ExponentialBuckets::from_parts(160, 20, &far(0)).unwrap();
        h.record(1.0);
        assert_eq!(h.positive.dense().1.iter().sum::<u64>(), 2);
        assert!(h.positive.dense().1.len() <= 3);
        // At the finest scale the reach still fits an i32 index.
        let (lo, hi) = reachable(20);
        assert!(lo < -(1 << 30) && hi >= (1 << 30) - 1);
    }

    #[test]
    fn a_dense_span_wider_than_any_histogram_is_not_allocated() {
        let mut b = Buckets::default();
        b.counts.insert(-1_000_000_000, 1);
        b.counts.insert(1_000_000_000, 1);
        assert_eq!(b.dense(), (-1_000_000_000, Vec::new()));
    }

    #[test]
    fn downscales_to_fit_max_buckets() {
        let mut h = ExponentialBuckets::new(4, 20);
        for v in [1.0, 2.0, 4.0, 8.0, 16.0, 1000.0, -3.0, 0.0] {
            h.record(v);
        }
        assert!(h.positive.counts.len() <= 4);
        let total: u64 =
            h.positive.counts.values().sum::<u64>() + h.negative.counts.values().sum::<u64>();
        assert_eq!(total + h.zero_count, h.count);
        assert_eq!(h.count, 8);
        assert_eq!(h.zero_count, 1);
        assert_eq!(h.min, -3.0);
        assert_eq!(h.max, 1000.0);
        // Every value lies in its bucket at the final scale.
        let base = 2f64.powf(2f64.powi(-h.scale));
        for v in [1.0f64, 2.0, 4.0, 8.0, 16.0, 1000.0] {
            let i = bucket_index(v, h.scale);
            assert!(
                base.powi(i) < v * (1.0 + 1e-9) && v <= base.powi(i + 1) * (1.0 + 1e-9),
                "{v} at {i}"
            );
            assert!(h.positive.counts.contains_key(&i));
        }
    }
}
