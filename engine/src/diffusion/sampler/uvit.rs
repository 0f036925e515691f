//! U-ViT's DPM-Solver.

use super::{Conditioning, Denoiser, Hooks, Record, cfg_call, check_len, first_channels};
use crate::diffusion::schedule::{DiscreteVp, dpm_fast_plan};
use crate::error::{Error, Result};

/// U-ViT's DPM-Solver ("fast", singlestep order 3, data prediction, uniform-in-t grid).
/// CFG: `eps = cond + (scale - 1) (cond - uncond)`; the network sees `tau = 1000 t`.
pub fn uvit_dpm_solver(
    net: &mut dyn Denoiser,
    cond: &Conditioning,
    x_t: Vec<f32>,
    steps: usize,
    mut hooks: Hooks,
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
    hooks.latent(&x);
    let mut done = 0;
    for up in &plan {
        let (s, t) = (up.s, up.t);
        let h = ns.lambda(t) - ns.lambda(s);
        let (sig_s, sig_t, a_t) = (ns.sigma(s), ns.sigma(t), ns.alpha(t));
        let p1 = (-h).exp_m1();
        let d_s = data_pred(&x, s, &mut hooks.record)?;
        hooks.estimate(&d_s);
        // x_k = (sigma_k / sigma_s) x - alpha_k expm1(-r_k h) D_s + extra
        let lin = |to: f64, r: f64| -> (f32, f32) {
            (
                (ns.sigma(to) / sig_s) as f32,
                (ns.alpha(to) * (-r * h).exp_m1()) as f32,
            )
        };
        // `ca x - cb D_s`: the first-order update, and the first intermediate state.
        let first = |(ca, cb): (f32, f32)| -> Vec<f32> {
            x.iter()
                .zip(&d_s)
                .map(|(&xv, &d)| ca * xv - cb * d)
                .collect()
        };
        let next: Vec<f32> = match up.order {
            1 => first(((sig_t / sig_s) as f32, (a_t * p1) as f32)),
            2 => {
                let s1 = up.s1.unwrap_or(t);
                let x1 = first(lin(s1, up.r1));
                let d1 = data_pred(&x1, s1, &mut hooks.record)?;
                let (ta, tb) = ((sig_t / sig_s) as f32, (a_t * p1) as f32);
                let tc = (0.5 / up.r1 * a_t * p1) as f32;
                (0..x.len())
                    .map(|i| ta * x[i] - tb * d_s[i] - tc * (d1[i] - d_s[i]))
                    .collect()
            }
            _ => {
                let (s1, s2) = (up.s1.unwrap_or(t), up.s2.unwrap_or(t));
                let x1 = first(lin(s1, up.r1));
                let d1 = data_pred(&x1, s1, &mut hooks.record)?;
                let (c2a, c2b) = lin(s2, up.r2);
                let p12 = (-up.r2 * h).exp_m1();
                let p22 = p12 / (up.r2 * h) + 1.0;
                let c2c = (up.r2 / up.r1 * ns.alpha(s2) * p22) as f32;
                let x2: Vec<f32> = (0..x.len())
                    .map(|i| c2a * x[i] - c2b * d_s[i] + c2c * (d1[i] - d_s[i]))
                    .collect();
                let d2 = data_pred(&x2, s2, &mut hooks.record)?;
                let p2 = p1 / h + 1.0;
                let (ta, tb) = ((sig_t / sig_s) as f32, (a_t * p1) as f32);
                let tc = (1.0 / up.r2 * a_t * p2) as f32;
                (0..x.len())
                    .map(|i| ta * x[i] - tb * d_s[i] + tc * (d2[i] - d_s[i]))
                    .collect()
            }
        };
        x = next;
        hooks.latent(&x);
        done += up.order;
        hooks.step(done, steps)?;
    }
    Ok(x)
}
