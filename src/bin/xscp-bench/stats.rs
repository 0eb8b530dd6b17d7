//! Counting: errors by kind, percentiles of kept samples, and a histogram for runs with
//! too many samples to keep.

/// What the workers of a run found, added up into one.
pub trait Merge: Default {
    fn merge(&mut self, other: Self);
}

/// Nearest-rank percentile of sorted values.
pub fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Errors of one run: a count, and counts by kind (the message without its digits, so that
/// the same failure on many clients of a run is one kind) with a first example each.
#[derive(Default)]
pub struct Errors {
    pub count: u64,
    pub kinds: Vec<(String, u64, String)>,
}

impl Errors {
    /// Most kinds kept; the rest are counted under the last one.
    const KINDS: usize = 12;

    pub fn add(&mut self, msg: String) {
        self.add_n(msg, 1);
    }

    pub fn add_n(&mut self, msg: String, n: u64) {
        self.count += n;
        let key: String = msg.chars().filter(|c| !c.is_ascii_digit()).collect();
        if let Some(k) = self.kinds.iter_mut().find(|k| k.0 == key) {
            k.1 += n;
        } else if self.kinds.len() < Self::KINDS {
            self.kinds.push((key, n, msg));
        } else if let Some(k) = self.kinds.last_mut() {
            k.1 += n;
            k.2 = "(other errors)".into();
        }
    }

    pub fn print(&self) {
        if self.count > 0 {
            xscp::outln!("  errors:      {}", self.count);
            for (_, n, example) in &self.kinds {
                xscp::outln!("    {n:>8} x {example}");
            }
        }
    }
}

impl Merge for Errors {
    fn merge(&mut self, other: Errors) {
        for (_, n, msg) in other.kinds {
            self.add_n(msg, n);
        }
    }
}

/// Latencies in microseconds in buckets about 3% wide: a soak has too many samples to keep.
#[derive(Clone)]
pub struct Hist {
    pub counts: Vec<u64>,
    pub n: u64,
    pub max: u64,
}

impl Default for Hist {
    fn default() -> Hist {
        Hist {
            counts: vec![0; 32 + 59 * 32],
            n: 0,
            max: 0,
        }
    }
}

impl Hist {
    pub fn index(v: u64) -> usize {
        if v < 32 {
            return v as usize;
        }
        let e = 63 - v.leading_zeros() as usize; // 5..=63
        let sub = ((v >> (e - 5)) & 31) as usize;
        32 + (e - 5) * 32 + sub
    }

    /// The highest value of bucket `i`.
    pub fn high(i: usize) -> u64 {
        if i < 32 {
            return i as u64;
        }
        let (e, sub) = ((i - 32) / 32 + 5, ((i - 32) % 32) as u64);
        ((32 + sub + 1) << (e - 5)) - 1
    }

    pub fn record(&mut self, v: u64) {
        self.counts[Hist::index(v)] += 1;
        self.n += 1;
        self.max = self.max.max(v);
    }

    pub fn merge(&mut self, other: &Hist) {
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        self.n += other.n;
        self.max = self.max.max(other.max);
    }

    /// Nearest-rank percentile (the top of its bucket, at most the maximum).
    pub fn percentile(&self, p: f64) -> u64 {
        if self.n == 0 {
            return 0;
        }
        let rank = (((p / 100.0) * self.n as f64).ceil() as u64).clamp(1, self.n);
        let mut seen = 0;
        for (i, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return Hist::high(i).min(self.max);
            }
        }
        self.max
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&v, 50.0), 50);
        assert_eq!(percentile(&v, 99.0), 99);
        assert_eq!(percentile(&v, 100.0), 100);
        assert_eq!(percentile(&[], 50.0), 0);
    }
}
