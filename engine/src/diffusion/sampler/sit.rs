//! The SiT ODE of USiT: torchdiffeq-style adaptive Dormand-Prince and fixed-grid Heun.

use super::{Conditioning, Denoiser, Hooks, Record, check_len, guided_velocity};
use crate::diffusion::schedule::{dopri5, linspace_f32};
use crate::error::{Error, Result};

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
    mut hooks: Hooks,
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
    hooks.latent(&x);
    match method {
        OdeMethod::Heun2 => {
            for w in 0..num_steps - 1 {
                let (t0, t1) = (grid[w], grid[w + 1]);
                let dt = t1 - t0;
                let k1 = drift(t0, &x, &mut hooks.record)?;
                let y1: Vec<f32> = x.iter().zip(&k1).map(|(&y, &k)| y + k * dt).collect();
                let k2 = drift(t1, &y1, &mut hooks.record)?;
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
                hooks.latent(&x);
                // An ODE state, not a clean estimate: noisier early, exact at the end.
                hooks.estimate(&x);
                hooks.step(w + 1, num_steps - 1)?;
            }
        }
        OdeMethod::Dopri5 { atol, rtol } => {
            x = dopri5_integrate(&mut drift, x, &grid, (atol, rtol), &mut hooks)?;
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
    (atol, rtol): (f64, f64),
    hooks: &mut Hooks,
) -> Result<Vec<f32>> {
    use dopri5::*;
    let n = y0.len();
    let t_start = f64::from(grid[0]);
    let f0 = f(grid[0], &y0, &mut hooks.record)?;
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
    let f1 = f((t_start + h0) as f32, &y1, &mut hooks.record)?;
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
                k.push(f(ti, &yi, &mut hooks.record)?);
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
        hooks.latent(&out);
        hooks.estimate(&out);
        // Adaptive steps: report the fraction of the time interval covered.
        hooks.step((f64::from(gt) * 1000.0) as usize, 1000)?;
    }
    Ok(out)
}
