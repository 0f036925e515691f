//! Tensor-free noise schedules and time grids of the class-conditional samplers.
//!
//! Tables are built the way the references build them (f32 where they use float32 tensors,
//! f64 where they use numpy float64) so the coefficients match to float rounding.

/// torch.linspace for float32: step and values in f32, the second half counted back from `end`.
pub fn linspace_f32(start: f32, end: f32, steps: usize) -> Vec<f32> {
    if steps == 1 {
        return vec![start];
    }
    let step = (end - start) / (steps - 1) as f32;
    let half = steps / 2;
    (0..steps)
        .map(|i| {
            if i < half {
                start + step * i as f32
            } else {
                end - step * (steps - i - 1) as f32
            }
        })
        .collect()
}

/// numpy.linspace for float64: `start + i * step`, the last point set to `end` exactly.
pub fn linspace_f64(start: f64, end: f64, steps: usize) -> Vec<f64> {
    if steps == 1 {
        return vec![start];
    }
    let step = (end - start) / (steps - 1) as f64;
    let mut v: Vec<f64> = (0..steps).map(|i| i as f64 * step + start).collect();
    v[steps - 1] = end;
    v
}

/// Resolution shift of a flow-matching sigma (SD3 / Sana): `shift s / (1 + (shift - 1) s)`,
/// which spends more steps at high noise for shift > 1.
pub fn flow_shift(sigma: f64, shift: f64) -> f64 {
    shift * sigma / (1.0 + (shift - 1.0) * sigma)
}

/// A flow-matching time grid (sigma 1 = noise, 0 = data).
#[derive(Debug, Clone, PartialEq)]
pub struct FlowGrid {
    /// `steps + 1` float32 sigmas, decreasing, the last one 0.
    pub sigmas: Vec<f32>,
    /// The time input the network receives at each step (`steps` values in [0, 1000]).
    pub model_tau: Vec<f32>,
}

/// diffusers' `DPMSolverMultistepScheduler(use_flow_sigmas, final_sigmas_type="zero")` grid:
/// `1 - linspace(1, 1/1000, N + 1)` shifted and reversed, minus its last point, then a final 0.
/// The network sees `sigma * 1000` **truncated to an integer** (the reference casts the
/// timesteps to int64), while the solver uses the untruncated float32 sigmas.
pub fn flow_dpm_grid(steps: usize, shift: f64) -> FlowGrid {
    let mut shifted: Vec<f64> = linspace_f64(1.0, 1.0 / 1000.0, steps + 1)
        .into_iter()
        .map(|a| flow_shift(1.0 - a, shift))
        .rev()
        .collect();
    shifted.pop();
    let model_tau = shifted
        .iter()
        .map(|&s| (s * 1000.0).trunc() as f32)
        .collect();
    let mut sigmas: Vec<f32> = shifted.iter().map(|&s| s as f32).collect();
    sigmas.push(0.0);
    FlowGrid { sigmas, model_tau }
}

/// diffusers' `FlowMatchEulerDiscreteScheduler(shift)` grid: timesteps from 1000 down to
/// `1000 sigma_min`, where `sigma_min` is the *already shifted* float32 sigma of training step
/// 1 (the scheduler's own table), so the shift applies twice at the low end; then
/// `sigma = shift(t / 1000)` in float64, cast to float32, and the network sees `1000 sigma` in
/// float32 (not truncated).
pub fn flow_euler_grid(steps: usize, shift: f64) -> FlowGrid {
    let s = 1.0f32 / 1000.0;
    let (sh, one) = (shift as f32, 1.0f32);
    let sigma_min = f64::from(sh * s / (one + (sh - one) * s));
    let sigmas_f: Vec<f32> = linspace_f64(1000.0, sigma_min * 1000.0, steps)
        .into_iter()
        .map(|t| flow_shift(t / 1000.0, shift) as f32)
        .collect();
    let model_tau = sigmas_f.iter().map(|&s| s * 1000.0).collect();
    let mut sigmas = sigmas_f;
    sigmas.push(0.0);
    FlowGrid { sigmas, model_tau }
}

/// Piecewise-linear interpolation through ascending knots `xs`, extrapolating the end segments
/// (DPM-Solver's `interpolate_fn`).
fn interp(x: f64, xs: &[f64], ys: &[f64]) -> f64 {
    let n = xs.len();
    let k = match xs.partition_point(|&v| v < x) {
        0 => 1,
        k if k >= n => n - 1,
        k => k,
    };
    let (x0, x1, y0, y1) = (xs[k - 1], xs[k], ys[k - 1], ys[k]);
    y0 + (x - x0) * (y1 - y0) / (x1 - x0)
}

/// DPM-Solver's `NoiseScheduleVP('discrete')`: `log alpha(t)` linear between the 1000 knots
/// `t_n = n / 1000`.
#[derive(Debug, Clone)]
pub struct DiscreteVp {
    t: Vec<f64>,
    log_alpha: Vec<f64>,
}

impl DiscreteVp {
    /// The Stable Diffusion "scaled linear" betas U-ViT uses: `linspace(sqrt(0.00085),
    /// sqrt(0.012), 1000)^2` (f64, then a float32 tensor); `log alpha = 0.5 cumsum(log(1 - beta))`
    /// in float32 like the reference.
    pub fn scaled_linear() -> Self {
        let n = 1000;
        let (a, b) = (0.00085f64.sqrt(), 0.012f64.sqrt());
        let mut acc = 0f32;
        let mut log_alpha = Vec::with_capacity(n);
        for i in 0..n {
            let beta = (a + (b - a) * i as f64 / (n - 1) as f64).powi(2) as f32;
            acc += (1.0 - beta).ln();
            log_alpha.push(f64::from(0.5 * acc));
        }
        let t = linspace_f32(0.0, 1.0, n + 1)[1..]
            .iter()
            .map(|&v| f64::from(v))
            .collect();
        Self { t, log_alpha }
    }

    pub fn log_alpha(&self, t: f64) -> f64 {
        interp(t, &self.t, &self.log_alpha)
    }

    pub fn alpha(&self, t: f64) -> f64 {
        self.log_alpha(t).exp()
    }

    pub fn sigma(&self, t: f64) -> f64 {
        (1.0 - (2.0 * self.log_alpha(t)).exp()).sqrt()
    }

    /// Half log-SNR `log(alpha / sigma)`.
    pub fn lambda(&self, t: f64) -> f64 {
        let la = self.log_alpha(t);
        la - 0.5 * (1.0 - (2.0 * la).exp()).ln()
    }

    /// The t whose lambda is `l`, through the inverse piecewise-linear log-alpha table.
    pub fn inverse_lambda(&self, l: f64) -> f64 {
        // log_alpha = -0.5 logaddexp(0, -2 l), written stably.
        let m = -2.0 * l;
        let lae = m.max(0.0) + (-(m.abs())).exp().ln_1p();
        let la = -0.5 * lae;
        let xs: Vec<f64> = self.log_alpha.iter().rev().copied().collect();
        let ys: Vec<f64> = self.t.iter().rev().copied().collect();
        interp(la, &xs, &ys)
    }
}

/// One singlestep DPM-Solver update from grid time `s` to `t`.
#[derive(Debug, Clone, PartialEq)]
pub struct DpmUpdate {
    pub s: f64,
    pub t: f64,
    pub order: usize,
    /// Intermediate times (orders 2 and 3), recomputed through `inverse_lambda`.
    pub s1: Option<f64>,
    pub s2: Option<f64>,
    pub r1: f64,
    pub r2: f64,
}

/// The orders of DPM-Solver's `method="fast"` for `steps` model evaluations per branch.
pub fn dpm_fast_orders(steps: usize) -> Vec<usize> {
    let k = steps / 3 + 1;
    let mut o = match steps % 3 {
        0 => {
            let mut v = vec![3; k.saturating_sub(2)];
            v.extend([2, 1]);
            v
        }
        1 => {
            let mut v = vec![3; k - 1];
            v.push(1);
            v
        }
        _ => {
            let mut v = vec![3; k - 1];
            v.push(2);
            v
        }
    };
    o.retain(|&x| x > 0);
    o
}

/// U-ViT's DPM-Solver "fast" plan: a uniform-in-t grid of `steps + 1` points from 1 to 1/1000
/// (U-ViT quirk: N = steps, not the number of updates), cut into singlestep updates of order 3
/// (then 2 / 1 at the end).
pub fn dpm_fast_plan(ns: &DiscreteVp, steps: usize) -> (Vec<f32>, Vec<DpmUpdate>) {
    let grid = linspace_f32(1.0, 1.0 / 1000.0, steps + 1);
    let g = |i: usize| f64::from(grid[i]);
    let mut out = Vec::new();
    let mut i = 0;
    for order in dpm_fast_orders(steps) {
        let (s, t) = (g(i), g(i + order));
        let (ls, lt) = (ns.lambda(s), ns.lambda(t));
        let h = lt - ls;
        let r1 = if order >= 2 {
            (ns.lambda(g(i + 1)) - ls) / h
        } else {
            0.0
        };
        let r2 = if order >= 3 {
            (ns.lambda(g(i + 2)) - ls) / h
        } else {
            0.0
        };
        out.push(DpmUpdate {
            s,
            t,
            order,
            s1: (order >= 2).then(|| ns.inverse_lambda(ls + r1 * h)),
            s2: (order >= 3).then(|| ns.inverse_lambda(ls + r2 * h)),
            r1,
            r2,
        });
        i += order;
    }
    (grid, out)
}

/// IDDPM `space_timesteps(num_timesteps, str(n))`: `n` evenly spaced original steps with a
/// rounded fractional stride (Python's round-half-even, accumulated like the reference).
pub fn space_timesteps(num_timesteps: usize, n: usize) -> Vec<usize> {
    if n <= 1 {
        return vec![0];
    }
    let stride = (num_timesteps - 1) as f64 / (n - 1) as f64;
    let mut cur = 0f64;
    let mut taken = Vec::with_capacity(n);
    for _ in 0..n {
        taken.push(cur.round_ties_even() as usize);
        cur += stride;
    }
    taken
}

/// The respaced ADM/IDDPM `GaussianDiffusion` tables (float64 like the reference's numpy).
#[derive(Debug, Clone)]
pub struct GaussianDiffusion {
    /// Original timestep fed to the network for respaced step i.
    pub timestep_map: Vec<usize>,
    pub betas: Vec<f64>,
    pub alphas_cumprod: Vec<f64>,
    pub alphas_cumprod_prev: Vec<f64>,
    pub sqrt_recip_alphas_cumprod: Vec<f64>,
    pub sqrt_recipm1_alphas_cumprod: Vec<f64>,
    pub posterior_log_variance_clipped: Vec<f64>,
    pub posterior_mean_coef1: Vec<f64>,
    pub posterior_mean_coef2: Vec<f64>,
}

impl GaussianDiffusion {
    /// DiT's `create_diffusion(str(n))`: linear betas 1e-4..0.02 over 1000 steps, respaced to n.
    pub fn linear_respaced(n: usize) -> Self {
        let total = 1000;
        let base: Vec<f64> = (0..total)
            .map(|i| 1e-4 + (0.02 - 1e-4) * i as f64 / (total - 1) as f64)
            .collect();
        let mut ac = 1f64;
        let use_t = space_timesteps(total, n);
        let (mut last, mut betas, mut map) = (1f64, Vec::new(), Vec::new());
        for (i, b) in base.iter().enumerate() {
            ac *= 1.0 - b;
            if use_t.contains(&i) {
                betas.push(1.0 - ac / last);
                last = ac;
                map.push(i);
            }
        }
        Self::from_betas(betas, map)
    }

    fn from_betas(betas: Vec<f64>, timestep_map: Vec<usize>) -> Self {
        let mut ac = Vec::with_capacity(betas.len());
        let mut p = 1f64;
        for b in &betas {
            p *= 1.0 - b;
            ac.push(p);
        }
        let mut ac_prev = vec![1.0];
        ac_prev.extend_from_slice(&ac[..ac.len() - 1]);
        let pv: Vec<f64> = (0..betas.len())
            .map(|i| betas[i] * (1.0 - ac_prev[i]) / (1.0 - ac[i]))
            .collect();
        // Entry 0 of the posterior variance is 0; the reference replaces it by entry 1.
        let plvc = (0..pv.len())
            .map(|i| pv[if i == 0 { 1.min(pv.len() - 1) } else { i }].ln())
            .collect();
        Self {
            timestep_map,
            sqrt_recip_alphas_cumprod: ac.iter().map(|a| (1.0 / a).sqrt()).collect(),
            sqrt_recipm1_alphas_cumprod: ac.iter().map(|a| (1.0 / a - 1.0).sqrt()).collect(),
            posterior_mean_coef1: (0..betas.len())
                .map(|i| betas[i] * ac_prev[i].sqrt() / (1.0 - ac[i]))
                .collect(),
            posterior_mean_coef2: (0..betas.len())
                .map(|i| (1.0 - ac_prev[i]) * (1.0 - betas[i]).sqrt() / (1.0 - ac[i]))
                .collect(),
            posterior_log_variance_clipped: plvc,
            alphas_cumprod: ac,
            alphas_cumprod_prev: ac_prev,
            betas,
        }
    }

    pub fn len(&self) -> usize {
        self.betas.len()
    }

    pub fn is_empty(&self) -> bool {
        self.betas.is_empty()
    }
}

/// The Dormand-Prince 5(4) tableau as torchdiffeq 0.2.5 writes it (rows of `beta`, weights of
/// the solution, the error estimate and the mid-point used for dense output).
pub mod dopri5 {
    pub const ALPHA: [f64; 6] = [1.0 / 5.0, 3.0 / 10.0, 4.0 / 5.0, 8.0 / 9.0, 1.0, 1.0];
    pub const BETA: [&[f64]; 6] = [
        &[1.0 / 5.0],
        &[3.0 / 40.0, 9.0 / 40.0],
        &[44.0 / 45.0, -56.0 / 15.0, 32.0 / 9.0],
        &[
            19372.0 / 6561.0,
            -25360.0 / 2187.0,
            64448.0 / 6561.0,
            -212.0 / 729.0,
        ],
        &[
            9017.0 / 3168.0,
            -355.0 / 33.0,
            46732.0 / 5247.0,
            49.0 / 176.0,
            -5103.0 / 18656.0,
        ],
        &[
            35.0 / 384.0,
            0.0,
            500.0 / 1113.0,
            125.0 / 192.0,
            -2187.0 / 6784.0,
            11.0 / 84.0,
        ],
    ];
    pub const C_SOL: [f64; 7] = [
        35.0 / 384.0,
        0.0,
        500.0 / 1113.0,
        125.0 / 192.0,
        -2187.0 / 6784.0,
        11.0 / 84.0,
        0.0,
    ];
    pub const C_ERROR: [f64; 7] = [
        35.0 / 384.0 - 1951.0 / 21600.0,
        0.0,
        500.0 / 1113.0 - 22642.0 / 50085.0,
        125.0 / 192.0 - 451.0 / 720.0,
        -2187.0 / 6784.0 - -12231.0 / 42400.0,
        11.0 / 84.0 - 649.0 / 6300.0,
        -1.0 / 60.0,
    ];
    pub const C_MID: [f64; 7] = [
        6025192743.0 / 30085553152.0 / 2.0,
        0.0,
        51252292925.0 / 65400821598.0 / 2.0,
        -2691868925.0 / 45128329728.0 / 2.0,
        187940372067.0 / 1594534317056.0 / 2.0,
        -1776094331.0 / 19743644256.0 / 2.0,
        11237099.0 / 235043384.0 / 2.0,
    ];
    pub const SAFETY: f64 = 0.9;
    pub const IFACTOR: f64 = 10.0;
    pub const DFACTOR: f64 = 0.2;
    pub const ORDER: usize = 5;

    /// torchdiffeq `_optimal_step_size`: the next step after one with RMS error ratio `err`.
    pub fn optimal_step(last: f64, err: f64) -> f64 {
        if err == 0.0 {
            return last * IFACTOR;
        }
        let dfactor = if err < 1.0 { 1.0 } else { DFACTOR };
        let factor = IFACTOR.min((SAFETY / err.powf(1.0 / ORDER as f64)).max(dfactor));
        last * factor
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fast_orders_sum_to_steps() {
        assert_eq!(dpm_fast_orders(30), [vec![3; 9], vec![2, 1]].concat());
        assert_eq!(dpm_fast_orders(10), vec![3, 3, 3, 1]);
        assert_eq!(dpm_fast_orders(20), [vec![3; 6], vec![2]].concat());
        for n in 1..60 {
            assert_eq!(dpm_fast_orders(n).iter().sum::<usize>(), n, "steps {n}");
        }
    }

    #[test]
    fn linspace_matches_torch_endpoints() {
        let g = linspace_f32(1.0, 0.001, 31);
        assert_eq!(g.len(), 31);
        assert_eq!(g[0], 1.0);
        assert_eq!(g[30], 0.001);
    }

    #[test]
    fn discrete_vp_is_consistent() {
        let ns = DiscreteVp::scaled_linear();
        // alpha^2 + sigma^2 = 1 and inverse_lambda undoes lambda inside the table.
        for &t in &[0.001, 0.0375, 0.5, 0.77, 1.0] {
            let (a, s) = (ns.alpha(t), ns.sigma(t));
            assert!((a * a + s * s - 1.0).abs() < 1e-12);
            assert!((ns.inverse_lambda(ns.lambda(t)) - t).abs() < 1e-9, "t {t}");
        }
        // SD scaled-linear: alpha_bar at the last step is about 0.0047 (log alpha ~ -2.68).
        assert!((ns.log_alpha(1.0) - 0.5 * 0.004_682f64.ln()).abs() < 0.01);
    }

    #[test]
    fn dit_respacing() {
        // Known values of the IDDPM helper: 250 of 1000 keeps 0 and 999 with stride ~4.012.
        let t = space_timesteps(1000, 250);
        assert_eq!(t.len(), 250);
        assert_eq!((t[0], t[1], t[2], t[249]), (0, 4, 8, 999));
        assert_eq!(space_timesteps(1000, 1000), (0..1000).collect::<Vec<_>>());
        // Respacing keeps the marginals: alpha_bar of respaced step i = base alpha_bar at map[i].
        let g = GaussianDiffusion::linear_respaced(250);
        let full = GaussianDiffusion::linear_respaced(1000);
        for (i, &m) in g.timestep_map.iter().enumerate() {
            assert!((g.alphas_cumprod[i] - full.alphas_cumprod[m]).abs() < 1e-12);
        }
        assert!(g.posterior_log_variance_clipped[0] == g.posterior_log_variance_clipped[1]);
    }

    #[test]
    fn numpy_linspace_keeps_both_ends() {
        let g = linspace_f64(1.0, 0.001, 11);
        assert_eq!((g[0], g[10]), (1.0, 0.001));
        assert!((g[5] - 0.5005).abs() < 1e-15);
        assert_eq!(linspace_f64(3.0, 7.0, 1), vec![3.0]);
    }

    #[test]
    fn flow_dpm_grid_matches_diffusers() {
        let shift = 3.0;
        for n in [1, 10, 20] {
            let g = flow_dpm_grid(n, shift);
            assert_eq!((g.sigmas.len(), g.model_tau.len()), (n + 1, n));
            assert_eq!(g.sigmas[n], 0.0);
            // First sigma: shift(1 - 1/1000) = 2.997 / 2.998.
            assert_eq!(g.sigmas[0], (2.997f64 / 2.998) as f32);
            for (s, t) in g.sigmas.iter().zip(&g.model_tau) {
                assert_eq!(*t, t.trunc(), "integer timesteps");
                // Truncation of the float64 value; the float32 sigma is within rounding of it.
                assert!(*t <= s * 1000.0 + 1e-3 && s * 1000.0 - t < 1.0 + 1e-3);
            }
        }
        // The int64 timesteps of diffusers 0.42.1 (fixture samplers/sana_flow_dpmsolver, s10).
        let want = [999., 963., 922., 874., 817., 749., 666., 562., 428., 249.];
        assert_eq!(flow_dpm_grid(10, shift).model_tau, want);
    }

    #[test]
    fn flow_euler_grid_matches_diffusers() {
        let shift = 3.0;
        for n in [1, 10, 20] {
            let g = flow_euler_grid(n, shift);
            assert_eq!((g.sigmas.len(), g.model_tau.len()), (n + 1, n));
            assert_eq!(
                (g.sigmas[0], g.model_tau[0], g.sigmas[n]),
                (1.0, 1000.0, 0.0)
            );
            for (s, t) in g.sigmas.iter().zip(&g.model_tau) {
                assert_eq!(*t, s * 1000.0);
            }
        }
        // The last sigma is shifted twice: shift(shift(1/1000)) = shift(0.003 / 1.002)
        // = 0.009 / 1.008 = 1/112.
        let g = flow_euler_grid(10, shift);
        assert!((f64::from(g.sigmas[9]) - 1.0 / 112.0).abs() < 1e-9);
        // Step 1 of 10 in diffusers 0.42.1 (fixture samplers/sana_flow_euler, s10).
        assert_eq!(g.model_tau[1], 960.129_33);
    }

    #[test]
    fn dopri5_tableau_is_consistent() {
        use dopri5::*;
        // Each row of beta sums to its alpha; solution weights sum to 1; error weights to 0.
        for (a, row) in ALPHA.iter().zip(BETA) {
            assert!((row.iter().sum::<f64>() - a).abs() < 1e-12);
        }
        assert!((C_SOL.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        assert!(C_ERROR.iter().sum::<f64>().abs() < 1e-12);
        assert_eq!(optimal_step(0.1, 0.0), 1.0);
        assert!((optimal_step(0.1, 1e-10) - 1.0).abs() < 1e-12); // capped at x10
        assert!((optimal_step(0.1, 1e10) - 0.02).abs() < 1e-12); // floored at x0.2
    }
}
