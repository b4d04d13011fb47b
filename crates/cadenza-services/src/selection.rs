//! Picking a variation when an objective names none: by weight (WEIGHTED) or by Thompson
//! sampling from each variation's Beta posterior of feedback (RANDOM, UNSPECIFIED).
//!
//! Thompson sampling draws one plausible success rate per variation from its posterior and
//! takes the best draw: a variation with good feedback wins most draws, one with little
//! feedback still wins some (its posterior is wide), so traffic shifts towards the better
//! variation without ever starving the others of the evidence that could change the verdict.

/// A candidate: its weight and its posterior (alpha, beta).
#[derive(Debug, Clone, Copy)]
pub struct Candidate {
    pub weight: i32,
    pub alpha: f64,
    pub beta: f64,
}

/// A source of uniform numbers in [0, 1): injectable so tests can be deterministic.
pub trait Uniform: Send {
    fn next(&mut self) -> f64;
}

/// The thread's random generator.
pub struct ThreadRandom;

impl Uniform for ThreadRandom {
    fn next(&mut self) -> f64 {
        rand::random::<f64>()
    }
}

/// Index of the candidate picked by weight; all-zero weights pick uniformly.
pub fn by_weight(cands: &[Candidate], u: &mut dyn Uniform) -> Option<usize> {
    if cands.is_empty() {
        return None;
    }
    let total: f64 = cands.iter().map(|c| f64::from(c.weight.max(0))).sum();
    if total <= 0.0 {
        return Some(((u.next() * cands.len() as f64) as usize).min(cands.len() - 1));
    }
    let mut x = u.next() * total;
    for (i, c) in cands.iter().enumerate() {
        x -= f64::from(c.weight.max(0));
        if x < 0.0 {
            return Some(i);
        }
    }
    Some(cands.len() - 1)
}

/// Index of the candidate with the highest draw from its Beta posterior.
pub fn thompson(cands: &[Candidate], u: &mut dyn Uniform) -> Option<usize> {
    let mut best: Option<(usize, f64)> = None;
    for (i, c) in cands.iter().enumerate() {
        let draw = beta(c.alpha, c.beta, u);
        if best.is_none_or(|(_, b)| draw > b) {
            best = Some((i, draw));
        }
    }
    best.map(|(i, _)| i)
}

/// A Beta(a, b) draw as X / (X + Y) with X ~ Gamma(a), Y ~ Gamma(b).
fn beta(a: f64, b: f64, u: &mut dyn Uniform) -> f64 {
    let x = gamma(a.max(1e-3), u);
    let y = gamma(b.max(1e-3), u);
    if x + y <= 0.0 { 0.5 } else { x / (x + y) }
}

/// Marsaglia and Tsang's method; shapes below 1 use the boost Gamma(a) = Gamma(a + 1) * U^(1/a).
fn gamma(shape: f64, u: &mut dyn Uniform) -> f64 {
    if shape < 1.0 {
        return gamma(shape + 1.0, u) * open01(u).powf(1.0 / shape);
    }
    let d = shape - 1.0 / 3.0;
    let c = 1.0 / (9.0 * d).sqrt();
    loop {
        let x = normal(u);
        let v = (1.0 + c * x).powi(3);
        if v <= 0.0 {
            continue;
        }
        let w = open01(u);
        if w.ln() < 0.5 * x * x + d - d * v + d * v.ln() {
            return d * v;
        }
    }
}

/// A standard normal draw (Box-Muller).
fn normal(u: &mut dyn Uniform) -> f64 {
    let a = open01(u);
    let b = u.next();
    (-2.0 * a.ln()).sqrt() * (std::f64::consts::TAU * b).cos()
}

/// Uniform in (0, 1): logarithms need a strictly positive value.
fn open01(u: &mut dyn Uniform) -> f64 {
    loop {
        let x = u.next();
        if x > 0.0 {
            return x;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small deterministic generator (xorshift), so the tests are repeatable.
    struct Xorshift(u64);
    impl Uniform for Xorshift {
        fn next(&mut self) -> f64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            (self.0 >> 11) as f64 / (1u64 << 53) as f64
        }
    }

    #[test]
    fn weights_split_traffic_in_proportion() {
        let cands = [Candidate { weight: 1, alpha: 1.0, beta: 1.0 }, Candidate { weight: 3, alpha: 1.0, beta: 1.0 }];
        let mut u = Xorshift(42);
        let picks = (0..4000).filter(|_| by_weight(&cands, &mut u) == Some(1)).count();
        assert!((2700..3300).contains(&picks), "{picks} of 4000 for the weight-3 variation");
        let zero = [Candidate { weight: 0, alpha: 1.0, beta: 1.0 }; 2];
        assert!(by_weight(&zero, &mut u).is_some());
        assert_eq!(by_weight(&[], &mut u), None);
    }

    #[test]
    fn thompson_favours_the_better_posterior_but_explores() {
        // 20 feedbacks each: one mostly good, one mostly bad.
        let good = Candidate { weight: 1, alpha: 17.0, beta: 5.0 };
        let bad = Candidate { weight: 1, alpha: 5.0, beta: 17.0 };
        let mut u = Xorshift(7);
        let wins = (0..2000).filter(|_| thompson(&[bad, good], &mut u) == Some(1)).count();
        assert!(wins > 1900, "the better variation won {wins} of 2000");
        // Early on (three feedbacks each way) the worse one is still drawn now and then.
        let leading = Candidate { weight: 1, alpha: 4.0, beta: 1.0 };
        let trailing = Candidate { weight: 1, alpha: 1.0, beta: 4.0 };
        let explored = (0..2000).filter(|_| thompson(&[leading, trailing], &mut u) == Some(1)).count();
        assert!((1..200).contains(&explored), "the trailing variation was drawn {explored} of 2000");
        // Equal, uninformed posteriors split evenly.
        let flat = Candidate { weight: 1, alpha: 1.0, beta: 1.0 };
        let first = (0..2000).filter(|_| thompson(&[flat, flat], &mut u) == Some(0)).count();
        assert!((800..1200).contains(&first), "{first} of 2000");
    }

    #[test]
    fn beta_draws_have_the_right_mean() {
        let mut u = Xorshift(99);
        let n = 5000;
        let mean: f64 = (0..n).map(|_| beta(2.0, 6.0, &mut u)).sum::<f64>() / f64::from(n);
        assert!((mean - 0.25).abs() < 0.02, "mean {mean}");
        let small: f64 = (0..n).map(|_| beta(0.5, 0.5, &mut u)).sum::<f64>() / f64::from(n);
        assert!((small - 0.5).abs() < 0.03, "mean {small}");
    }
}
