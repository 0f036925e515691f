//! Sampling latents for class labels with the sampler of the model's family.

use super::{Family, SamplerKind};
use crate::diffusion::rng;
use crate::diffusion::sampler::{self, Conditioning, Denoiser, DitLoop, Hooks, OdeMethod};
use crate::error::{Error, Result};
use crate::task::{Cancel, Progress};

/// Settings of one sampling run.
#[derive(Debug, Clone)]
pub struct SampleSettings {
    pub sampler: SamplerKind,
    pub steps: usize,
    pub cfg: f32,
    pub seed: u64,
    pub labels: Vec<i64>,
    /// 1000 for the released models.
    pub null_class: i64,
}

/// Samples latents (scaled, i.e. what the network sees) for `settings.labels`: noise from the
/// portable RNG (item k uses stream item k), the chosen sampler, CFG. Returns `[B, C, H, W]`.
pub fn generate(
    net: &mut dyn Denoiser,
    family: Family,
    chw: [usize; 3],
    s: &SampleSettings,
    progress: &mut dyn Progress,
    cancel: &Cancel,
) -> Result<Vec<f32>> {
    if !s.sampler.family_ok(family) {
        return Err(Error::Input(format!(
            "sampler {} does not fit a {} model (uvit: dpm-solver; dit: ddpm, ddim; usit: dopri5, heun2)",
            s.sampler.name(),
            family.name()
        )));
    }
    let b = s.labels.len();
    if b == 0 {
        return Err(Error::Input("no class to sample".into()));
    }
    let per: usize = chw.iter().product();
    let items: Vec<u32> = (0..b as u32).collect();
    let x_t = rng::batch_normals(s.seed, rng::Stream::Initial, &items, per);
    let cond = Conditioning {
        labels: s.labels.clone(),
        null_class: s.null_class,
        cfg: s.cfg,
        chw,
        text: None,
    };
    let hooks = Hooks::new(progress, cancel);
    match s.sampler {
        SamplerKind::DpmSolver => sampler::uvit_dpm_solver(net, &cond, x_t, s.steps, hooks),
        SamplerKind::Ddpm | SamplerKind::Ddim => {
            let which = if s.sampler == SamplerKind::Ddpm {
                DitLoop::Ddpm
            } else {
                DitLoop::Ddim
            };
            // Both CFG halves draw their own noise: items 0..B and B..2B of the step stream.
            let doubled: Vec<u32> = (0..2 * b as u32).collect();
            let seed = s.seed;
            let mut noise = move |j: usize| -> Result<Vec<f32>> {
                Ok(rng::batch_normals(
                    seed,
                    rng::Stream::Step(j as u32),
                    &doubled,
                    per,
                ))
            };
            sampler::dit_sample(net, &cond, x_t, s.steps, which, &mut noise, hooks)
        }
        SamplerKind::Dopri5 => sampler::sit_ode(
            net,
            &cond,
            x_t,
            s.steps,
            OdeMethod::Dopri5 {
                atol: 1e-6,
                rtol: 1e-3,
            },
            hooks,
        ),
        SamplerKind::Heun2 => sampler::sit_ode(net, &cond, x_t, s.steps, OdeMethod::Heun2, hooks),
    }
}
