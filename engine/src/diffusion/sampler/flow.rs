//! Sana's flow samplers: diffusers' flow DPM-Solver++ 2M and flow-matching Euler.

use super::{Conditioning, Denoiser, Hooks, check_len, guided_velocity};
use crate::diffusion::schedule::{flow_dpm_grid, flow_euler_grid};
use crate::error::{Error, Result};

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

/// The loop both flow samplers share: the guided velocity at each grid point, and `update(i,
/// x, v)` giving the next state.
fn flow_loop(
    net: &mut dyn Denoiser,
    cond: &Conditioning,
    x_t: Vec<f32>,
    model_tau: &[f32],
    sigmas: &[f32],
    hooks: &mut Hooks,
    mut update: impl FnMut(usize, &[f32], &[f32]) -> Vec<f32>,
) -> Result<Vec<f32>> {
    let steps = model_tau.len();
    let mut x = x_t;
    hooks.latent(&x);
    for (i, &tau) in model_tau.iter().enumerate() {
        let v = guided_velocity(net, cond, &x, tau, &mut hooks.record)?;
        if hooks.wants_estimate() {
            let s = sigmas[i];
            let x0: Vec<f32> = x.iter().zip(&v).map(|(&xv, &vv)| xv - s * vv).collect();
            hooks.estimate(&x0);
        }
        x = update(i, &x, &v);
        hooks.latent(&x);
        hooks.step(i + 1, steps)?;
    }
    Ok(x)
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
    mut hooks: Hooks,
) -> Result<Vec<f32>> {
    check_flow_args("the flow DPM-Solver", cond, &x_t, steps, shift)?;
    let grid = flow_dpm_grid(steps, shift);
    let sig = &grid.sigmas;
    // Flow sigmas: alpha = 1 - sigma; lambda is +inf at the final sigma 0.
    let lambda = |s: f32| (1.0 - s).ln() - s.ln();
    // The previous step's data prediction and its lambda (the multistep history).
    let mut prev: Option<(Vec<f32>, f32)> = None;
    let step = |i: usize, x: &[f32], v: &[f32]| -> Vec<f32> {
        let (sig_s, sig_t) = (sig[i], sig[i + 1]);
        let x0: Vec<f32> = x.iter().zip(v).map(|(&xv, &vv)| xv - sig_s * vv).collect();
        let (lam_s, lam_t) = (lambda(sig_s), lambda(sig_t));
        let h = lam_t - lam_s;
        let ratio = sig_t / sig_s;
        let coef = (1.0 - sig_t) * ((-h).exp() - 1.0);
        // First order without history, and at the last step (final sigma 0 forces it), where
        // it returns x0 exactly.
        let next = match prev.as_ref().filter(|_| i + 1 < steps) {
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
        next
    };
    flow_loop(
        net,
        cond,
        x_t,
        &grid.model_tau[..steps],
        sig,
        &mut hooks,
        step,
    )
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
    mut hooks: Hooks,
) -> Result<Vec<f32>> {
    check_flow_args("the flow Euler sampler", cond, &x_t, steps, shift)?;
    let grid = flow_euler_grid(steps, shift);
    let sig = &grid.sigmas;
    let step = |i: usize, x: &[f32], v: &[f32]| -> Vec<f32> {
        let dt = sig[i + 1] - sig[i];
        x.iter().zip(v).map(|(&xv, &vv)| xv + dt * vv).collect()
    };
    flow_loop(
        net,
        cond,
        x_t,
        &grid.model_tau[..steps],
        sig,
        &mut hooks,
        step,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::task::{Cancel, Progress};

    /// A progress sink that keeps every clean-latent estimate.
    struct Estimates(Vec<Vec<f32>>);

    impl Progress for Estimates {
        fn update(&mut self, _: &str, _: u64, _: u64) {}
        fn wants_estimate(&self) -> bool {
            true
        }
        fn estimate(&mut self, x: &[f32]) {
            self.0.push(x.to_vec());
        }
    }

    /// With the exact velocity of a point mass at `m` (`v = (x - m) / sigma`), every step's
    /// estimate `x - sigma v` is `m`: one per step, for both flow samplers.
    #[test]
    fn estimates_are_the_clean_latent_each_step() {
        let m = [0.3f32, -0.7];
        let cond = Conditioning {
            labels: vec![0],
            null_class: 1000,
            cfg: 1.0,
            chw: [2, 1, 1],
            text: None,
        };
        let mut net = |x: &[f32], n: usize, tau: &[f32], _l: &[i64]| -> Result<Vec<f32>> {
            Ok((0..n)
                .flat_map(|r| {
                    let s = tau[r] / 1000.0;
                    (0..2).map(move |k| (x[2 * r + k] - m[k]) / s)
                })
                .collect())
        };
        for euler in [true, false] {
            let mut sink = Estimates(Vec::new());
            let cancel = Cancel::new();
            let hooks = Hooks::new(&mut sink, &cancel);
            let x_t = vec![1.0f32, 2.0];
            if euler {
                flow_euler(&mut net, &cond, x_t, 4, 3.0, hooks).unwrap();
            } else {
                flow_dpm_solver(&mut net, &cond, x_t, 4, 3.0, hooks).unwrap();
            }
            assert_eq!(sink.0.len(), 4, "one estimate per step");
            // Euler: only rounding. DPM: the network sees truncated integer times, so x0 is
            // off by (x - m) (1 - 1000 s / trunc(1000 s)), about 1 % at these times.
            let tol = if euler { 1e-4 } else { 3e-2 };
            for e in &sink.0 {
                for (v, mv) in e.iter().zip(m) {
                    assert!((v - mv).abs() < tol, "{v} vs {mv} (euler {euler})");
                }
            }
        }
    }
}
