//! Branch-free f32 math (exp, sigmoid, erf) written so LLVM vectorises it, compiled three times
//! (baseline x86-64 / AVX2+FMA / AVX-512F) and picked at run time, and the rayon-threaded slice
//! loops of the element-wise kernels.

use std::sync::OnceLock;

use rayon::prelude::*;

/// The instruction set a kernel runs with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// Whatever the build target guarantees (SSE2 on x86-64; NEON on aarch64).
    Baseline,
    /// x86-64 AVX2 + FMA.
    Avx2,
    /// x86-64 AVX-512F.
    Avx512,
}

impl Level {
    /// The best level this CPU has, lowered by `DCAE_SIMD=baseline|avx2` (to check the other
    /// code paths on one machine). Read once per process.
    pub fn detected() -> Level {
        static LEVEL: OnceLock<Level> = OnceLock::new();
        *LEVEL.get_or_init(|| {
            let best = best_level();
            match std::env::var("DCAE_SIMD").ok().as_deref() {
                Some("baseline") => Level::Baseline,
                Some("avx2") if best == Level::Avx512 => Level::Avx2,
                _ => best,
            }
        })
    }

    /// Every level this CPU can run (tests run each).
    pub fn available() -> Vec<Level> {
        let best = best_level();
        [Level::Baseline, Level::Avx2, Level::Avx512]
            .into_iter()
            .filter(|l| *l as u8 <= best as u8)
            .collect()
    }
}

fn best_level() -> Level {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            return Level::Avx512;
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            return Level::Avx2;
        }
    }
    Level::Baseline
}

// --- scalar math, inlined into each level's loop ---------------------------------------------

/// `e^x`, Cephes `expf`: range reduction by `n = round(x / ln 2)` (the 1.5 * 2^23 trick keeps it
/// branch-free), a degree-7 polynomial on `[-ln2/2, ln2/2]`, then `2^n` built in the exponent
/// bits. Relative error about 1 ulp; the input is clamped so `2^n` stays a normal number
/// (`e^-87 ≈ 1.6e-38` and `e^88 ≈ 1.7e38`, which only ever feed `1 / (1 + e^x)` here).
#[inline(always)]
#[allow(clippy::excessive_precision)] // Cephes' coefficients, as published
pub fn exp(x: f32) -> f32 {
    const MAGIC: f32 = 12_582_912.0; // 1.5 * 2^23
    let x = x.clamp(-87.0, 88.0);
    let t = x * std::f32::consts::LOG2_E + MAGIC;
    let n = t - MAGIC;
    let ni = t.to_bits() as i32 - MAGIC.to_bits() as i32;
    // ln 2 split in two so `n * ln2` is exact in its high part.
    let r = x - n * 0.693_359_4 - n * -2.121_944_4e-4;
    let mut p = 1.987_569_1e-4_f32;
    p = p * r + 1.398_199_9e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 1.666_666_5e-1;
    p = p * r + 5.000_000_1e-1;
    let e = p * r * r + r + 1.0;
    e * f32::from_bits(((ni + 127) << 23) as u32)
}

/// `1 / (1 + e^-x)`.
#[inline(always)]
pub fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + exp(-x))
}

/// `erf(x)`: for |x| >= 0.5 Abramowitz & Stegun 7.1.26 (absolute error below 1.5e-7; with f32
/// rounding below 4e-7), the form PyTorch's vectorised CPU `erf` uses; below 0.5 its series.
#[inline(always)]
pub fn erf(x: f32) -> f32 {
    let a = x.abs();
    let t = 1.0 / (1.0 + 0.327_591_1 * a);
    let mut p = 1.061_405_4_f32;
    p = p * t - 1.453_152_1;
    p = p * t + 1.421_413_8;
    p = p * t - 0.284_496_74;
    p = p * t + 0.254_829_6;
    let y = (1.0 - p * t * exp(-a * a)).copysign(x);
    // Near 0 `1 - p t e^(-x^2)` cancels; the Maclaurin series to x^11 is good to 1e-8 there.
    let x2 = x * x;
    let mut s = -1.0 / 1320.0_f32;
    s = s * x2 + 1.0 / 216.0;
    s = s * x2 - 1.0 / 42.0;
    s = s * x2 + 0.1;
    s = s * x2 - 1.0 / 3.0;
    s = s * x2 + 1.0;
    let small = std::f32::consts::FRAC_2_SQRT_PI * x * s;
    // A select, not a branch: both sides are computed and the loop stays vectorised.
    if a < 0.5 { small } else { y }
}

/// The element-wise operations with a kernel of their own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unary {
    /// `x * sigmoid(x)`.
    Silu,
    Sigmoid,
    /// `x/2 * (1 + erf(x / sqrt 2))` (PyTorch `gelu`, approximate = "none").
    Gelu,
    /// `x/2 * (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))` = `x * sigmoid(2 sqrt(2/pi) (...))`
    /// (PyTorch `gelu(approximate="tanh")`).
    GeluTanh,
}

impl Unary {
    #[inline(always)]
    #[allow(clippy::excessive_precision)]
    fn apply(self, x: f32) -> f32 {
        match self {
            Unary::Silu => x * sigmoid(x),
            Unary::Sigmoid => sigmoid(x),
            Unary::Gelu => 0.5 * x * (1.0 + erf(x * std::f32::consts::FRAC_1_SQRT_2)),
            Unary::GeluTanh => {
                const K: f32 = 1.595_769_1; // 2 * sqrt(2 / pi)
                x * sigmoid(K * (x + 0.044_715 * x * x * x))
            }
        }
    }
}

// --- slice loops, one copy per level -----------------------------------------------------------

/// `pub fn name(level: Level, args...)` that runs `body` compiled for that level: the body is
/// `inline(always)` into one `#[target_feature]` copy per x86-64 level, so the same plain loop
/// is vectorised 4, 8 or 16 floats wide.
macro_rules! per_level {
    ($(#[$m:meta])* $vis:vis fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $body:block) => {
        $(#[$m])*
        $vis fn $name(level: $crate::kernels::Level, $($arg: $ty),*) {
            #[inline(always)]
            fn body($($arg: $ty),*) $body
            #[cfg(target_arch = "x86_64")]
            #[target_feature(enable = "avx2,fma")]
            fn avx2($($arg: $ty),*) {
                body($($arg),*)
            }
            #[cfg(target_arch = "x86_64")]
            #[target_feature(enable = "avx512f")]
            fn avx512($($arg: $ty),*) {
                body($($arg),*)
            }
            match level {
                // SAFETY: `Level::detected` / `available` only return a level the CPU reported.
                #[cfg(target_arch = "x86_64")]
                $crate::kernels::Level::Avx512 => unsafe { avx512($($arg),*) },
                #[cfg(target_arch = "x86_64")]
                $crate::kernels::Level::Avx2 => unsafe { avx2($($arg),*) },
                _ => body($($arg),*),
            }
        }
    };
}
pub(crate) use per_level;

per_level! {
    /// `op` on every value of `xs`, in place, on the calling thread.
    pub fn map_slice(op: Unary, xs: &mut [f32]) {
        // One `match` outside the loop so each loop body is straight-line, vectorisable code.
        match op {
            Unary::Silu => xs.iter_mut().for_each(|x| *x = Unary::Silu.apply(*x)),
            Unary::Sigmoid => xs.iter_mut().for_each(|x| *x = Unary::Sigmoid.apply(*x)),
            Unary::Gelu => xs.iter_mut().for_each(|x| *x = Unary::Gelu.apply(*x)),
            Unary::GeluTanh => xs.iter_mut().for_each(|x| *x = Unary::GeluTanh.apply(*x)),
        }
    }
}

per_level! {
    /// `out = value * silu(gate)`, on the calling thread; the three slices have one length.
    pub fn glu_slice(value: &[f32], gate: &[f32], out: &mut [f32]) {
        for ((o, v), g) in out.iter_mut().zip(value).zip(gate) {
            *o = *v * Unary::Silu.apply(*g);
        }
    }
}

per_level! {
    /// `dy * silu'(x)`, `silu'(x) = s (1 + x (1 - s))` with `s = sigmoid(x)`, on the calling
    /// thread; the three slices have one length.
    pub fn silu_grad_slice(x: &[f32], dy: &[f32], out: &mut [f32]) {
        for ((o, x), d) in out.iter_mut().zip(x).zip(dy) {
            let s = sigmoid(*x);
            *o = *d * (s * (1.0 + *x * (1.0 - s)));
        }
    }
}

/// [`silu_grad_slice`] over rayon's pool, into a new buffer.
pub fn silu_grad(level: Level, x: &[f32], dy: &[f32]) -> Vec<f32> {
    let mut out = vec![0.0f32; x.len()];
    out.par_chunks_mut(CHUNK)
        .zip(x.par_chunks(CHUNK).zip(dy.par_chunks(CHUNK)))
        .for_each(|(o, (x, d))| silu_grad_slice(level, x, d, o));
    out
}

/// Values per rayon task: large enough that scheduling is noise, small enough to split a
/// 128-channel 256² activation (8.4M values) over many cores.
pub const CHUNK: usize = 1 << 15;

/// `op` on every value of `xs`, in place, over rayon's pool.
pub fn map_par(level: Level, op: Unary, xs: &mut [f32]) {
    if xs.len() <= CHUNK {
        map_slice(level, op, xs);
    } else {
        xs.par_chunks_mut(CHUNK)
            .for_each(|c| map_slice(level, op, c));
    }
}

/// `op` of `src` into `dst` (same length), over rayon's pool.
pub fn map_par_into(level: Level, op: Unary, src: &[f32], dst: &mut [f32]) {
    dst.par_chunks_mut(CHUNK)
        .zip(src.par_chunks(CHUNK))
        .for_each(|(d, s)| {
            d.copy_from_slice(s);
            map_slice(level, op, d);
        });
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every float of a wide range, the specials and the clamp edges.
    fn probe() -> Vec<f32> {
        let mut v: Vec<f32> = (-4000..=4000).map(|i| i as f32 * 0.025).collect();
        v.extend([
            0.0,
            -0.0,
            1e-30,
            -1e-30,
            1e-7,
            -1e-7,
            86.9,
            87.0,
            87.1,
            88.0,
            88.5,
            89.0,
            -86.9,
            -87.0,
            -87.5,
            -88.5,
            -100.0,
            100.0,
            1e6,
            -1e6,
            f32::MAX,
            f32::MIN,
        ]);
        v
    }

    #[test]
    fn exp_is_within_two_ulp_of_libm_on_its_range() {
        for x in probe() {
            let x = x.clamp(-87.0, 88.0);
            let want = (x as f64).exp();
            let got = exp(x) as f64;
            let rel = ((got - want) / want).abs();
            assert!(rel < 2.5e-7, "exp({x}) = {got}, libm {want}, rel {rel:e}");
        }
    }

    #[test]
    fn sigmoid_silu_and_gelus_match_f64_references() {
        for x in probe() {
            let xd = x as f64;
            let sig = 1.0 / (1.0 + (-xd).exp());
            // Absolute bound 2e-7 near 0 and 1; relative 4 ulp elsewhere.
            let close = |got: f32, want: f64, what: &str| {
                let err = (got as f64 - want).abs();
                assert!(
                    err <= 2e-7 + 5e-7 * want.abs(),
                    "{what}({x}) = {got}, want {want}, err {err:e}"
                );
            };
            close(sigmoid(x), sig, "sigmoid");
            if xd.abs() < 1e30 {
                close(Unary::Silu.apply(x), xd * sig, "silu");
                // `1 + erf` cancels for x < 0: erf's absolute error (4e-7 with rounding)
                // scaled by x/2, the same as any f32 `0.5 x (1 + erf(x/sqrt 2))` (libm's too).
                let erf_ref = libm_erf(xd / std::f64::consts::SQRT_2);
                let want = 0.5 * xd * (1.0 + erf_ref);
                let err = (Unary::Gelu.apply(x) as f64 - want).abs();
                assert!(
                    err <= 2e-7 + 5e-7 * want.abs() + 2e-7 * xd.abs(),
                    "gelu({x}) err {err:e}"
                );
                let u = (2.0 / std::f64::consts::PI).sqrt() * (xd + 0.044715 * xd * xd * xd);
                close(
                    Unary::GeluTanh.apply(x),
                    0.5 * xd * (1.0 + u.tanh()),
                    "gelu_tanh",
                );
            }
        }
        assert!(sigmoid(f32::NAN).is_nan() && Unary::Gelu.apply(f32::NAN).is_nan());
    }

    #[test]
    fn erf_is_within_its_documented_bound() {
        for i in -6000..=6000 {
            let x = i as f64 * 1e-3;
            let err = (erf(x as f32) as f64 - libm_erf(x)).abs();
            assert!(err < 4e-7, "erf({x}) err {err:e}");
        }
        for i in 1..500 {
            let x = i as f64 * 1e-3;
            let rel = ((erf(x as f32) as f64 - libm_erf(x)) / libm_erf(x)).abs();
            assert!(rel < 5e-7, "erf({x}) relative error {rel:e} near 0");
        }
        assert_eq!(erf(0.0), 0.0);
        assert_eq!(erf(10.0), 1.0);
        assert_eq!(erf(-10.0), -1.0);
    }

    #[test]
    fn every_level_gives_the_scalar_results_and_threading_changes_nothing() {
        let xs: Vec<f32> = (0..(3 * CHUNK + 77))
            .map(|i| ((i * 7919) % 20011) as f32 * 1e-3 - 10.0)
            .collect();
        for op in [Unary::Silu, Unary::Sigmoid, Unary::Gelu, Unary::GeluTanh] {
            let want: Vec<f32> = xs.iter().map(|x| op.apply(*x)).collect();
            for level in Level::available() {
                // FMA contraction may differ from the baseline by rounding only.
                let mut got = xs.clone();
                map_par(level, op, &mut got);
                let mut into = vec![0.0; xs.len()];
                map_par_into(level, op, &xs, &mut into);
                for ((g, i), w) in got.iter().zip(&into).zip(&want) {
                    assert!((g - w).abs() <= 1e-6 * (1.0 + w.abs()), "{op:?} {level:?}");
                    assert_eq!(g.to_bits(), i.to_bits());
                }
            }
        }
    }

    /// erf in f64 by its Taylor series (|x| < 3) or continued fraction (beyond), accurate to
    /// ~1e-15: an independent reference for the f32 polynomial.
    fn libm_erf(x: f64) -> f64 {
        let a = x.abs();
        let r = if a < 3.0 {
            let mut term = a;
            let mut sum = a;
            let mut n = 0.0;
            while term.abs() > 1e-17 * sum.abs() {
                n += 1.0;
                term *= -a * a / n;
                sum += term / (2.0 * n + 1.0);
            }
            sum * 2.0 / std::f64::consts::PI.sqrt()
        } else {
            // erfc by Lentz's continued fraction.
            let mut f = a;
            let (mut c, mut d) = (a, 0.0);
            for k in 1..200 {
                let an = k as f64 / 2.0;
                d = 1.0 / (a + an * d);
                c = a + an / c;
                f *= c * d;
            }
            1.0 - (-a * a).exp() / (f * std::f64::consts::PI.sqrt())
        };
        r.copysign(x)
    }
}
