//! DiT's ancestral DDPM with learned-range variance, and DDIM.

use super::{Conditioning, Denoiser, Hooks, cfg_call, check_len};
use crate::diffusion::schedule::GaussianDiffusion;
use crate::error::{Error, Result};

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
pub fn dit_sample(
    net: &mut dyn Denoiser,
    cond: &Conditioning,
    x_t: Vec<f32>,
    steps: usize,
    which: DitLoop,
    step_noise: &mut dyn FnMut(usize) -> Result<Vec<f32>>,
    mut hooks: Hooks,
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
    hooks.latent(&x);
    for (j, i) in (0..steps).rev().enumerate() {
        let tau = gd.timestep_map[i] as f32;
        let (c, u) = cfg_call(net, cond, &x[..b * per], tau, &mut hooks.record)?;
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
        hooks.latent(&x);
        hooks.estimate(&x0s);
        if let Some(r) = hooks.record.as_deref_mut() {
            r.pred_xstart.push(x0s);
        }
        hooks.step(j + 1, steps)?;
    }
    x.truncate(b * per);
    Ok(x)
}
