//! Sana-Sprint's sampler: diffusers' `SCMScheduler` (TrigFlow consistency sampling) driven as
//! `SanaSprintPipeline` drives it — the network is a flow model, queried at
//! `s = sin t / (sin t + cos t)` on `x / sigma_d * sqrt(s^2 + (1 - s)^2)` and its velocity
//! turned back into TrigFlow's `F`; each step `x0 = cos t x - sin t F`, then
//! `x = cos t' x0 + sin t' sigma_d z` with fresh noise `z` (drawn on the last step too).
//! No classifier-free guidance: the guidance scale is an input of the network.

use super::{Conditioning, Denoiser, Hooks, check_len};
use crate::diffusion::schedule::linspace_f32;
use crate::error::{Error, Result};

/// `SCMScheduler`'s `sigma_data`.
pub const SCM_SIGMA_DATA: f32 = 0.5;
/// `max_timesteps` and `intermediate_timesteps` of `SanaSprintPipeline`: the pipeline's
/// rounded 1.57080, not pi/2, so the times match the reference to the bit.
#[allow(clippy::approx_constant)]
const MAX_T: f32 = 1.57080;
const INTERMEDIATE_T: f32 = 1.3;

/// The TrigFlow times: `[1.5708, 1.3, 0]` for 2 steps (the pipeline default), else
/// `linspace(1.5708, 0, steps + 1)` (diffusers needs `intermediate_timesteps=None` there).
pub fn scm_timesteps(steps: usize) -> Vec<f32> {
    if steps == 2 {
        vec![MAX_T, INTERMEDIATE_T, 0.0]
    } else {
        linspace_f32(MAX_T, 0.0, steps + 1)
    }
}

/// Samples from standard-normal `x_t` (`[B, C, H, W]`); `noise(j)` gives the fresh standard
/// normals of step `j`. Returns the final `x0 / sigma_d`, the latent to decode. The network
/// sees one row per condition (`cond.labels`); `cond.cfg` is not used here.
pub fn scm_sample(
    net: &mut dyn Denoiser,
    cond: &Conditioning,
    x_t: Vec<f32>,
    steps: usize,
    noise: &mut dyn FnMut(usize) -> Result<Vec<f32>>,
    mut hooks: Hooks,
) -> Result<Vec<f32>> {
    let b = cond.batch();
    check_len("initial latent", x_t.len(), b * cond.per_item())?;
    if steps == 0 {
        return Err(Error::Input("the SCM sampler needs at least 1 step".into()));
    }
    let ts = scm_timesteps(steps);
    let sd = SCM_SIGMA_DATA;
    let per = cond.per_item();
    let mut x: Vec<f32> = x_t.iter().map(|v| v * sd).collect();
    hooks.latent(&x);
    let mut x0 = Vec::new();
    for i in 0..steps {
        let (s, t) = (ts[i], ts[i + 1]);
        let st = s.sin() / (s.cos() + s.sin());
        let k = (st * st + (1.0 - st) * (1.0 - st)).sqrt();
        let x_in: Vec<f32> = x.iter().map(|v| v / sd * k).collect();
        let out = net.eval(&x_in, b, &vec![st; b], &cond.labels)?;
        if out.len() < b * per || out.len() % b != 0 {
            return Err(Error::Input(format!(
                "the network returned {} values for a batch of {b}",
                out.len()
            )));
        }
        if let Some(r) = hooks.record.as_deref_mut() {
            r.nfe_tau.push(st);
        }
        let v = super::first_channels(&out, b, cond.chw);
        let (a, c) = (1.0 - 2.0 * st, 1.0 - 2.0 * st + 2.0 * st * st);
        let z = noise(i)?;
        check_len("step noise", z.len(), x.len())?;
        x0 = (0..x.len())
            .map(|j| {
                let f = (a * x_in[j] + c * v[j]) / k * sd;
                s.cos() * x[j] - s.sin() * f
            })
            .collect();
        x = (0..x.len())
            .map(|j| t.cos() * x0[j] + t.sin() * (z[j] * sd))
            .collect();
        if hooks.wants_estimate() {
            hooks.estimate(&x0.iter().map(|v| v / sd).collect::<Vec<_>>());
        }
        hooks.latent(&x);
        hooks.step(i + 1, steps)?;
    }
    Ok(x0.iter().map(|v| v / sd).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::task::{Cancel, Silent};

    #[test]
    fn timesteps() {
        assert_eq!(scm_timesteps(2), vec![MAX_T, 1.3, 0.0]);
        let t = scm_timesteps(4);
        assert_eq!(t.len(), 5);
        assert_eq!((t[0], t[4]), (MAX_T, 0.0));
    }

    /// With a network that returns the exact flow velocity of a point mass at `m`
    /// (`v = (x_s - m) / s` in flow time), one step lands on `m` and the result is `m`
    /// whatever the noise.
    #[test]
    fn exact_velocity_lands_on_the_data() {
        let m = [0.3f32, -0.7];
        let cond = Conditioning {
            labels: vec![0],
            null_class: -1,
            cfg: 1.0,
            chw: [2, 1, 1],
            text: None,
        };
        // The flow state x_s = (1 - s) m + s e; the model input is that state.
        let mut net = |x: &[f32], _n: usize, tau: &[f32], _l: &[i64]| -> Result<Vec<f32>> {
            let s = tau[0];
            Ok(x.iter().zip(m).map(|(&xv, mv)| (xv - mv) / s).collect())
        };
        let mut noise = |_j: usize| Ok(vec![0.25f32, -1.5]);
        let x_t = vec![1.0f32, 2.0];
        let out = scm_sample(
            &mut net,
            &cond,
            x_t,
            2,
            &mut noise,
            Hooks::new(&mut Silent, &Cancel::new()),
        )
        .unwrap();
        for (o, mv) in out.iter().zip(m) {
            assert!((o - mv).abs() < 1e-4, "{o} vs {mv}");
        }
    }
}
