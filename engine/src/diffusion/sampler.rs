//! The class-conditional samplers, on host vectors.
//!
//! Latents are small (at most a few times 10^5 values) next to a network evaluation, so the
//! sampler arithmetic runs on the host in f32, identically on every backend; only the network
//! ([`Denoiser`]) runs on the device. Each sampler reproduces its reference's update order and
//! its classifier-free guidance combination (see `shared/fixtures/diffusion/samplers/*`).

use super::schedule::{
    DiscreteVp, GaussianDiffusion, dopri5, dpm_fast_plan, flow_dpm_grid, flow_euler_grid,
    linspace_f32,
};
use crate::error::{Error, Result};

/// The network as the samplers see it.
pub trait Denoiser {
    /// `x`: `[n, C, H, W]` row-major, `tau`: the time input per row, `labels`: class per row.
    /// Returns `[n, C_out, H, W]` (C_out = C, or 2C for a learned-sigma DiT).
    fn eval(&mut self, x: &[f32], n: usize, tau: &[f32], labels: &[i64]) -> Result<Vec<f32>>;
}

impl<F> Denoiser for F
where
    F: FnMut(&[f32], usize, &[f32], &[i64]) -> Result<Vec<f32>>,
{
    fn eval(&mut self, x: &[f32], n: usize, tau: &[f32], labels: &[i64]) -> Result<Vec<f32>> {
        self(x, n, tau, labels)
    }
}

/// What every sampler needs besides the network.
#[derive(Debug, Clone)]
pub struct Conditioning {
    /// Class per batch item.
    pub labels: Vec<i64>,
    /// The null class of the unconditional branch (1000 for the released models).
    pub null_class: i64,
    /// Guidance scale.
    pub cfg: f32,
    /// `[C, H, W]` of one latent.
    pub chw: [usize; 3],
}

impl Conditioning {
    fn batch(&self) -> usize {
        self.labels.len()
    }
    fn per_item(&self) -> usize {
        self.chw.iter().product()
    }
    fn doubled_labels(&self) -> Vec<i64> {
        let mut l = self.labels.clone();
        l.extend(std::iter::repeat_n(self.null_class, self.batch()));
        l
    }
}

/// States recorded by a sampler (only when asked: they cost memory at real sizes).
#[derive(Debug, Clone, Default)]
pub struct Record {
    /// The initial state, then the state after every update.
    pub latents: Vec<Vec<f32>>,
    /// The x0 prediction of every DDPM/DDIM step.
    pub pred_xstart: Vec<Vec<f32>>,
    /// Every model time input, in call order (one per network call, not per row).
    pub nfe_tau: Vec<f32>,
}

/// Progress reports: (fraction of the trajectory done in [0, 1]).
pub type Progress<'a> = &'a mut dyn FnMut(f32);

fn check_len(what: &str, got: usize, want: usize) -> Result<()> {
    if got != want {
        return Err(Error::Input(format!(
            "{what}: {got} values, expected {want}"
        )));
    }
    Ok(())
}

/// One doubled call `[x_cond; x_uncond]` with labels `[y; null]`; returns (cond, uncond) outputs.
fn cfg_call(
    net: &mut dyn Denoiser,
    cond: &Conditioning,
    x: &[f32],
    tau: f32,
    rec: &mut Option<&mut Record>,
) -> Result<(Vec<f32>, Vec<f32>)> {
    let b = cond.batch();
    let mut xx = Vec::with_capacity(2 * x.len());
    xx.extend_from_slice(x);
    xx.extend_from_slice(x);
    let out = net.eval(&xx, 2 * b, &vec![tau; 2 * b], &cond.doubled_labels())?;
    if out.is_empty() || out.len() % (2 * b) != 0 {
        return Err(Error::Input(format!(
            "the network returned {} values for a batch of {}",
            out.len(),
            2 * b
        )));
    }
    if let Some(r) = rec.as_deref_mut() {
        r.nfe_tau.push(tau);
    }
    let half = out.len() / 2;
    let mut o = out;
    let u = o.split_off(half);
    Ok((o, u))
}

/// First `C` channels of each item of a `[B, C_out, H, W]` output.
fn first_channels(out: &[f32], b: usize, chw: [usize; 3]) -> Vec<f32> {
    let per = chw.iter().product::<usize>();
    let per_out = out.len() / b;
    (0..b)
        .flat_map(|i| out[i * per_out..i * per_out + per].iter().copied())
        .collect()
}

/// Guided velocity of the flow samplers, `uncond + scale (cond - uncond)` (the SiT and Sana
/// convention), from one doubled call. Sana orders its batch `[uncond, cond]`; rows are
/// independent, so our `[cond, uncond]` gives the same values.
fn guided_velocity(
    net: &mut dyn Denoiser,
    cond: &Conditioning,
    x: &[f32],
    tau: f32,
    rec: &mut Option<&mut Record>,
) -> Result<Vec<f32>> {
    let (b, chw) = (cond.batch(), cond.chw);
    let (c, u) = cfg_call(net, cond, x, tau, rec)?;
    let (c, u) = (first_channels(&c, b, chw), first_channels(&u, b, chw));
    Ok(u.iter()
        .zip(&c)
        .map(|(&uv, &cv)| uv + cond.cfg * (cv - uv))
        .collect())
}

/// U-ViT's DPM-Solver ("fast", singlestep order 3, data prediction, uniform-in-t grid).
/// CFG: `eps = cond + (scale - 1) (cond - uncond)`; the network sees `tau = 1000 t`.
pub fn uvit_dpm_solver(
    net: &mut dyn Denoiser,
    cond: &Conditioning,
    x_t: Vec<f32>,
    steps: usize,
    mut rec: Option<&mut Record>,
    progress: Progress,
) -> Result<Vec<f32>> {
    check_len("initial latent", x_t.len(), cond.batch() * cond.per_item())?;
    if steps == 0 {
        return Err(Error::Input("DPM-Solver needs at least 1 step".into()));
    }
    let ns = DiscreteVp::scaled_linear();
    let (_, plan) = dpm_fast_plan(&ns, steps);
    let chw = cond.chw;
    let b = cond.batch();
    let mut data_pred = |x: &[f32], t: f64, rec: &mut Option<&mut Record>| -> Result<Vec<f32>> {
        let tau = t as f32 * 1000.0;
        let (c, u) = cfg_call(net, cond, x, tau, rec)?;
        let (c, u) = (first_channels(&c, b, chw), first_channels(&u, b, chw));
        let g = cond.cfg - 1.0;
        let (alpha, sigma) = (ns.alpha(t) as f32, ns.sigma(t) as f32);
        Ok(x.iter()
            .zip(c.iter().zip(&u))
            .map(|(&xv, (&cv, &uv))| {
                let eps = cv + g * (cv - uv);
                (xv - sigma * eps) / alpha
            })
            .collect())
    };
    let mut x = x_t;
    if let Some(r) = rec.as_deref_mut() {
        r.latents.push(x.clone());
    }
    let mut done = 0;
    for up in &plan {
        let (s, t) = (up.s, up.t);
        let h = ns.lambda(t) - ns.lambda(s);
        let (sig_s, sig_t, a_t) = (ns.sigma(s), ns.sigma(t), ns.alpha(t));
        let p1 = (-h).exp_m1();
        let d_s = data_pred(&x, s, &mut rec)?;
        // x_k = (sigma_k / sigma_s) x - alpha_k expm1(-r_k h) D_s + extra
        let lin = |to: f64, r: f64| -> (f32, f32) {
            (
                (ns.sigma(to) / sig_s) as f32,
                (ns.alpha(to) * (-r * h).exp_m1()) as f32,
            )
        };
        let next: Vec<f32> = match up.order {
            1 => {
                let (ca, cb) = ((sig_t / sig_s) as f32, (a_t * p1) as f32);
                x.iter()
                    .zip(&d_s)
                    .map(|(&xv, &d)| ca * xv - cb * d)
                    .collect()
            }
            2 => {
                let s1 = up.s1.unwrap_or(t);
                let (ca, cb) = lin(s1, up.r1);
                let x1: Vec<f32> = x
                    .iter()
                    .zip(&d_s)
                    .map(|(&xv, &d)| ca * xv - cb * d)
                    .collect();
                let d1 = data_pred(&x1, s1, &mut rec)?;
                let (ta, tb) = ((sig_t / sig_s) as f32, (a_t * p1) as f32);
                let tc = (0.5 / up.r1 * a_t * p1) as f32;
                (0..x.len())
                    .map(|i| ta * x[i] - tb * d_s[i] - tc * (d1[i] - d_s[i]))
                    .collect()
            }
            _ => {
                let (s1, s2) = (up.s1.unwrap_or(t), up.s2.unwrap_or(t));
                let (ca, cb) = lin(s1, up.r1);
                let x1: Vec<f32> = x
                    .iter()
                    .zip(&d_s)
                    .map(|(&xv, &d)| ca * xv - cb * d)
                    .collect();
                let d1 = data_pred(&x1, s1, &mut rec)?;
                let (c2a, c2b) = lin(s2, up.r2);
                let p12 = (-up.r2 * h).exp_m1();
                let p22 = p12 / (up.r2 * h) + 1.0;
                let c2c = (up.r2 / up.r1 * ns.alpha(s2) * p22) as f32;
                let x2: Vec<f32> = (0..x.len())
                    .map(|i| c2a * x[i] - c2b * d_s[i] + c2c * (d1[i] - d_s[i]))
                    .collect();
                let d2 = data_pred(&x2, s2, &mut rec)?;
                let p2 = p1 / h + 1.0;
                let (ta, tb) = ((sig_t / sig_s) as f32, (a_t * p1) as f32);
                let tc = (1.0 / up.r2 * a_t * p2) as f32;
                (0..x.len())
                    .map(|i| ta * x[i] - tb * d_s[i] + tc * (d2[i] - d_s[i]))
                    .collect()
            }
        };
        x = next;
        if let Some(r) = rec.as_deref_mut() {
            r.latents.push(x.clone());
        }
        done += up.order;
        progress(done as f32 / steps as f32);
    }
    Ok(x)
}

/// Which DiT loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DitLoop {
    /// ADM ancestral sampling with learned-range variance (`DiT.generate`).
    Ddpm,
    /// DDIM, eta = 0 (deterministic; the variance channels are ignored).
    Ddim,
}

/// DiT's GaussianDiffusion loops on the CFG-doubled batch `[2B, C, H, W]` (both halves start
/// at `x_T`). `forward_with_cfg` feeds `[x[:B], x[:B]]` with labels `[y, null]` and guides only
/// the first C (epsilon) channels; each half keeps its own variance channels. `step_noise(j)`
/// gives the `[2B, C, H, W]` noise of the j-th step (DDPM only). Returns the first half.
#[allow(clippy::too_many_arguments)]
pub fn dit_sample(
    net: &mut dyn Denoiser,
    cond: &Conditioning,
    x_t: Vec<f32>,
    steps: usize,
    which: DitLoop,
    step_noise: &mut dyn FnMut(usize) -> Result<Vec<f32>>,
    mut rec: Option<&mut Record>,
    progress: Progress,
) -> Result<Vec<f32>> {
    let b = cond.batch();
    let per = cond.per_item();
    check_len("initial latent", x_t.len(), b * per)?;
    if steps == 0 || steps > 1000 {
        return Err(Error::Input(format!(
            "DiT sampling needs 1..=1000 steps, got {steps}"
        )));
    }
    let gd = GaussianDiffusion::linear_respaced(steps);
    let mut x = x_t.clone();
    x.extend_from_slice(&x_t);
    if let Some(r) = rec.as_deref_mut() {
        r.latents.push(x.clone());
    }
    for (j, i) in (0..steps).rev().enumerate() {
        let tau = gd.timestep_map[i] as f32;
        let (c, u) = cfg_call(net, cond, &x[..b * per], tau, &mut rec)?;
        let out_per = c.len() / b;
        if which == DitLoop::Ddpm && out_per != 2 * per {
            return Err(Error::Input(format!(
                "DDPM with learned variance needs 2C output channels; the network gives {out_per} values per item for {per} latent values"
            )));
        }
        let f = |v: f64| v as f32;
        let (sra, srm1) = (
            f(gd.sqrt_recip_alphas_cumprod[i]),
            f(gd.sqrt_recipm1_alphas_cumprod[i]),
        );
        let (c1, c2) = (f(gd.posterior_mean_coef1[i]), f(gd.posterior_mean_coef2[i]));
        let (min_log, max_log) = (f(gd.posterior_log_variance_clipped[i]), f(gd.betas[i].ln()));
        let (sq_prev, sq_1m_prev) = (
            f(gd.alphas_cumprod_prev[i].sqrt()),
            f((1.0 - gd.alphas_cumprod_prev[i]).sqrt()),
        );
        let noise = if which == DitLoop::Ddpm && i != 0 {
            let n = step_noise(j)?;
            check_len("step noise", n.len(), 2 * b * per)?;
            Some(n)
        } else {
            None
        };
        let mut next = vec![0f32; x.len()];
        let mut x0s = vec![0f32; x.len()];
        for row in 0..2 * b {
            let item = row % b;
            let var_src = if row < b { &c } else { &u };
            for k in 0..per {
                let (cv, uv) = (c[item * out_per + k], u[item * out_per + k]);
                let eps = uv + cond.cfg * (cv - uv);
                let idx = row * per + k;
                let xv = x[idx];
                let x0 = sra * xv - srm1 * eps;
                x0s[idx] = x0;
                next[idx] = match which {
                    DitLoop::Ddpm => {
                        let mean = c1 * x0 + c2 * xv;
                        match &noise {
                            Some(n) => {
                                let v = var_src[item * out_per + per + k];
                                let frac = (v + 1.0) / 2.0;
                                let log_var = frac * max_log + (1.0 - frac) * min_log;
                                mean + (0.5 * log_var).exp() * n[idx]
                            }
                            None => mean,
                        }
                    }
                    DitLoop::Ddim => {
                        let e = (sra * xv - x0) / srm1;
                        x0 * sq_prev + sq_1m_prev * e
                    }
                };
            }
        }
        x = next;
        if let Some(r) = rec.as_deref_mut() {
            r.latents.push(x.clone());
            r.pred_xstart.push(x0s);
        }
        progress((j + 1) as f32 / steps as f32);
    }
    x.truncate(b * per);
    Ok(x)
}

/// SiT ODE solvers over `linspace(0, 1, num_steps)` (noise at t = 0, data at t = 1).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum OdeMethod {
    /// torchdiffeq fixed-grid Heun (RK2 trapezoid), num_steps - 1 intervals.
    Heun2,
    /// torchdiffeq adaptive Dormand-Prince 5(4); the grid gives only output points.
    Dopri5 { atol: f64, rtol: f64 },
}

/// USiT's SiT ODE sampler. The velocity is `uncond + scale (cond - uncond)` from one doubled
/// call; the network sees `tau = t` in [0, 1]. Records the state at every grid point.
pub fn sit_ode(
    net: &mut dyn Denoiser,
    cond: &Conditioning,
    x0: Vec<f32>,
    num_steps: usize,
    method: OdeMethod,
    mut rec: Option<&mut Record>,
    progress: Progress,
) -> Result<Vec<f32>> {
    let b = cond.batch();
    check_len("initial latent", x0.len(), b * cond.per_item())?;
    if num_steps < 2 {
        return Err(Error::Input(
            "the SiT ODE needs at least 2 grid points".into(),
        ));
    }
    let mut drift = |t: f32, x: &[f32], rec: &mut Option<&mut Record>| -> Result<Vec<f32>> {
        guided_velocity(net, cond, x, t, rec)
    };
    let grid = linspace_f32(0.0, 1.0, num_steps);
    let mut x = x0;
    if let Some(r) = rec.as_deref_mut() {
        r.latents.push(x.clone());
    }
    match method {
        OdeMethod::Heun2 => {
            for w in 0..num_steps - 1 {
                let (t0, t1) = (grid[w], grid[w + 1]);
                let dt = t1 - t0;
                let k1 = drift(t0, &x, &mut rec)?;
                let y1: Vec<f32> = x.iter().zip(&k1).map(|(&y, &k)| y + k * dt).collect();
                let k2 = drift(t1, &y1, &mut rec)?;
                let (w1, w2) = (dt * 0.5, dt * 0.5);
                // torchdiffeq returns dy = (y0 + dt sum c k) - y0 and adds it back.
                x = x
                    .iter()
                    .zip(k1.iter().zip(&k2))
                    .map(|(&y, (&a, &b2))| {
                        let y1 = y + (a * w1 + b2 * w2);
                        y + (y1 - y)
                    })
                    .collect();
                if let Some(r) = rec.as_deref_mut() {
                    r.latents.push(x.clone());
                }
                progress((w + 1) as f32 / (num_steps - 1) as f32);
            }
        }
        OdeMethod::Dopri5 { atol, rtol } => {
            x = dopri5_integrate(&mut drift, x, &grid, atol, rtol, &mut rec, progress)?;
        }
    }
    Ok(x)
}

fn rms_scaled(v: impl Iterator<Item = f64>) -> f64 {
    let (mut s, mut n) = (0f64, 0usize);
    for x in v {
        s += x * x;
        n += 1;
    }
    (s / n.max(1) as f64).sqrt()
}

type Drift<'a> = dyn FnMut(f32, &[f32], &mut Option<&mut Record>) -> Result<Vec<f32>> + 'a;

/// torchdiffeq 0.2.5 `dopri5`: times in f64, states in f32, RMS error norm, initial step from
/// `_select_initial_step`, FSAL, 4th-order dense output to the grid points.
fn dopri5_integrate(
    f: &mut Drift,
    y0: Vec<f32>,
    grid: &[f32],
    atol: f64,
    rtol: f64,
    rec: &mut Option<&mut Record>,
    progress: Progress,
) -> Result<Vec<f32>> {
    use dopri5::*;
    let n = y0.len();
    let t_start = f64::from(grid[0]);
    let f0 = f(grid[0], &y0, rec)?;
    // _select_initial_step (order - 1 = 4).
    let scale: Vec<f64> = y0
        .iter()
        .map(|&v| atol + f64::from(v).abs() * rtol)
        .collect();
    let d0 = rms_scaled(y0.iter().zip(&scale).map(|(&v, s)| f64::from(v) / s));
    let d1 = rms_scaled(f0.iter().zip(&scale).map(|(&v, s)| f64::from(v) / s));
    let h0 = if d0 < 1e-5 || d1 < 1e-5 {
        1e-6
    } else {
        0.01 * d0 / d1
    };
    let h0f = h0 as f32;
    let y1: Vec<f32> = y0.iter().zip(&f0).map(|(&y, &k)| y + h0f * k).collect();
    let f1 = f((t_start + h0) as f32, &y1, rec)?;
    let d2 = rms_scaled(
        f1.iter()
            .zip(&f0)
            .zip(&scale)
            .map(|((&a, &b), s)| f64::from(a - b) / s),
    ) / h0;
    let h1 = if d1 <= 1e-15 && d2 <= 1e-15 {
        (h0 * 1e-3).max(1e-6)
    } else {
        (0.01 / d1.max(d2)).powf(1.0 / 5.0)
    };
    let mut dt = (100.0 * h0).min(h1);

    let (mut y, mut fy, mut t1) = (y0.clone(), f0, t_start);
    let mut coeff: [Vec<f32>; 5] = std::array::from_fn(|_| y0.clone());
    let mut prev_t0 = t_start;
    let mut out = y0;
    let mut steps = 0usize;
    for &gt in &grid[1..] {
        let next_t = f64::from(gt);
        while next_t > t1 {
            steps += 1;
            if steps > 100_000 {
                return Err(Error::Input(
                    "dopri5 took more than 100000 steps; the tolerances are too tight".into(),
                ));
            }
            let ts = t1;
            if ts + dt <= ts {
                return Err(Error::Input(format!("dopri5 step underflow at t = {ts}")));
            }
            let tn = ts + dt;
            let (t0f, dtf, tnf) = (ts as f32, dt as f32, tn as f32);
            let mut k: Vec<Vec<f32>> = vec![fy.clone()];
            for (a, row) in ALPHA.iter().zip(BETA) {
                let ti = if *a == 1.0 {
                    tnf
                } else {
                    t0f + (*a as f32) * dtf
                };
                let w: Vec<f32> = row.iter().map(|&bj| bj as f32 * dtf).collect();
                let yi: Vec<f32> = (0..n)
                    .map(|e| {
                        let mut acc = 0f32;
                        for (kj, wj) in k.iter().zip(&w) {
                            acc += kj[e] * wj;
                        }
                        y[e] + acc
                    })
                    .collect();
                k.push(f(ti, &yi, rec)?);
            }
            // FSAL: the last stage is the solution (beta's last row equals c_sol).
            let y_new: Vec<f32> = {
                let w: Vec<f32> = BETA[5].iter().map(|&bj| bj as f32 * dtf).collect();
                (0..n)
                    .map(|e| {
                        let mut acc = 0f32;
                        for (kj, wj) in k.iter().zip(&w) {
                            acc += kj[e] * wj;
                        }
                        y[e] + acc
                    })
                    .collect()
            };
            let we: Vec<f32> = C_ERROR.iter().map(|&c| c as f32 * dtf).collect();
            let err = rms_scaled((0..n).map(|e| {
                let mut acc = 0f32;
                for (kj, wj) in k.iter().zip(&we) {
                    acc += kj[e] * wj;
                }
                let tol = atol + rtol * f64::from(y[e].abs().max(y_new[e].abs()));
                f64::from(acc) / tol
            }));
            if err <= 1.0 {
                let wm: Vec<f32> = C_MID.iter().map(|&c| c as f32 * dtf).collect();
                let f_first = &k[0];
                let f_last = &k[6];
                let mut c = std::array::from_fn(|_| vec![0f32; n]);
                for e in 0..n {
                    let mut acc = 0f32;
                    for (kj, wj) in k.iter().zip(&wm) {
                        acc += kj[e] * wj;
                    }
                    let ymid = y[e] + acc;
                    let (a0, a1, fa, fb) = (y[e], y_new[e], f_first[e], f_last[e]);
                    c[4][e] = 2.0 * dtf * (fb - fa) - 8.0 * (a1 + a0) + 16.0 * ymid;
                    c[3][e] = dtf * (5.0 * fa - 3.0 * fb) + 18.0 * a0 + 14.0 * a1 - 32.0 * ymid;
                    c[2][e] = dtf * (fb - 4.0 * fa) - 11.0 * a0 - 5.0 * a1 + 16.0 * ymid;
                    c[1][e] = dtf * fa;
                    c[0][e] = a0;
                }
                coeff = c;
                prev_t0 = ts;
                t1 = tn;
                fy = k.pop().unwrap_or_default();
                y = y_new;
            }
            // A rejected step keeps (t, y, f) and retries with the smaller dt.
            dt = optimal_step(dt, err);
        }
        // Dense output on the last accepted step [prev_t0, t1].
        let xr = ((next_t - prev_t0) / (t1 - prev_t0)) as f32;
        out = (0..n)
            .map(|e| {
                let mut total = coeff[0][e] + xr * coeff[1][e];
                let mut p = xr;
                for cc in &coeff[2..] {
                    p *= xr;
                    total += p * cc[e];
                }
                total
            })
            .collect();
        if let Some(r) = rec.as_deref_mut() {
            r.latents.push(out.clone());
        }
        progress(gt);
    }
    Ok(out)
}

fn check_flow_args(
    what: &str,
    cond: &Conditioning,
    x_t: &[f32],
    steps: usize,
    shift: f64,
) -> Result<()> {
    check_len("initial latent", x_t.len(), cond.batch() * cond.per_item())?;
    if steps == 0 {
        return Err(Error::Input(format!("{what} needs at least 1 step")));
    }
    // A non-positive shift maps sigmas outside (0, 1].
    if !(shift.is_finite() && shift > 0.0) {
        return Err(Error::Input(format!(
            "{what}: the flow shift must be positive, got {shift}"
        )));
    }
    Ok(())
}

/// Sana's flow DPM-Solver++ 2M: diffusers' `DPMSolverMultistepScheduler` with flow sigmas,
/// `flow_prediction`, midpoint, final sigma 0, on [`flow_dpm_grid`]. `labels` pick the
/// condition of each item (for a text model: the prompt), `null_class` the unconditional one.
/// The network sees the integer timesteps; the update runs in float32 on the float sigmas,
/// term by term as the reference writes it.
pub fn flow_dpm_solver(
    net: &mut dyn Denoiser,
    cond: &Conditioning,
    x_t: Vec<f32>,
    steps: usize,
    shift: f64,
    mut rec: Option<&mut Record>,
    progress: Progress,
) -> Result<Vec<f32>> {
    check_flow_args("the flow DPM-Solver", cond, &x_t, steps, shift)?;
    let grid = flow_dpm_grid(steps, shift);
    let sig = &grid.sigmas;
    // Flow sigmas: alpha = 1 - sigma; lambda is +inf at the final sigma 0.
    let lambda = |s: f32| (1.0 - s).ln() - s.ln();
    let mut x = x_t;
    if let Some(r) = rec.as_deref_mut() {
        r.latents.push(x.clone());
    }
    // The previous step's data prediction and its lambda (the multistep history).
    let mut prev: Option<(Vec<f32>, f32)> = None;
    for i in 0..steps {
        let v = guided_velocity(net, cond, &x, grid.model_tau[i], &mut rec)?;
        let (sig_s, sig_t) = (sig[i], sig[i + 1]);
        let x0: Vec<f32> = x.iter().zip(&v).map(|(&xv, &vv)| xv - sig_s * vv).collect();
        let (lam_s, lam_t) = (lambda(sig_s), lambda(sig_t));
        let h = lam_t - lam_s;
        let ratio = sig_t / sig_s;
        let coef = (1.0 - sig_t) * ((-h).exp() - 1.0);
        // First order without history, and at the last step (final sigma 0 forces it), where
        // it returns x0 exactly.
        x = match prev.as_ref().filter(|_| i + 1 < steps) {
            None => x
                .iter()
                .zip(&x0)
                .map(|(&xv, &d)| ratio * xv - coef * d)
                .collect(),
            Some((x0_prev, lam_prev)) => {
                let inv_r0 = 1.0 / ((lam_s - lam_prev) / h);
                let half = 0.5 * coef;
                (0..x.len())
                    .map(|k| {
                        let d1 = inv_r0 * (x0[k] - x0_prev[k]);
                        ratio * x[k] - coef * x0[k] - half * d1
                    })
                    .collect()
            }
        };
        prev = Some((x0, lam_s));
        if let Some(r) = rec.as_deref_mut() {
            r.latents.push(x.clone());
        }
        progress((i + 1) as f32 / steps as f32);
    }
    Ok(x)
}

/// diffusers' `FlowMatchEulerDiscreteScheduler`: `x += (sigma_next - sigma) v` on
/// [`flow_euler_grid`], the network seeing the float timesteps. Conditioning as in
/// [`flow_dpm_solver`].
pub fn flow_euler(
    net: &mut dyn Denoiser,
    cond: &Conditioning,
    x_t: Vec<f32>,
    steps: usize,
    shift: f64,
    mut rec: Option<&mut Record>,
    progress: Progress,
) -> Result<Vec<f32>> {
    check_flow_args("the flow Euler sampler", cond, &x_t, steps, shift)?;
    let grid = flow_euler_grid(steps, shift);
    let mut x = x_t;
    if let Some(r) = rec.as_deref_mut() {
        r.latents.push(x.clone());
    }
    for i in 0..steps {
        let v = guided_velocity(net, cond, &x, grid.model_tau[i], &mut rec)?;
        let dt = grid.sigmas[i + 1] - grid.sigmas[i];
        for (xv, vv) in x.iter_mut().zip(&v) {
            *xv += dt * vv;
        }
        if let Some(r) = rec.as_deref_mut() {
            r.latents.push(x.clone());
        }
        progress((i + 1) as f32 / steps as f32);
    }
    Ok(x)
}
