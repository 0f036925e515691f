//! The class-conditional samplers, on host vectors.
//!
//! Latents are small (at most a few times 10^5 values) next to a network evaluation, so the
//! sampler arithmetic runs on the host in f32, identically on every backend; only the network
//! ([`Denoiser`]) runs on the device. Each sampler reproduces its reference's update order and
//! its classifier-free guidance combination (see `shared/fixtures/diffusion/samplers/*`).

pub mod dit;
pub mod flow;
pub mod scm;
pub mod sit;
pub mod uvit;

pub use dit::{DitLoop, dit_sample};
pub use flow::{flow_dpm_solver, flow_euler};
pub use scm::{SCM_SIGMA_DATA, scm_sample, scm_timesteps};
pub use sit::{OdeMethod, sit_ode};
pub use uvit::uvit_dpm_solver;

use crate::error::{Error, Result};
use crate::task::{Cancel, Progress};

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
    /// Text models' guidance (Sana), `None` for the class-conditional ones.
    pub text: Option<TextGuidance>,
}

/// How diffusers' Sana pipelines guide: no unconditional pass at all when `cfg <= 1`
/// (`do_classifier_free_guidance = guidance_scale > 1`), and perturbed-attention guidance.
///
/// Batch rows (labels): the unconditional rows (`null_class`) first when CFG is on, then the
/// conditions, then — with PAG — the perturbed rows, labelled [`perturbed_label`] of their
/// condition (the network runs identity self-attention in its PAG blocks for them).
/// `eps = u + cfg (c - u) + pag (c - p)`, the terms of an absent branch dropped.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TextGuidance {
    /// PAG scale; 0 = off.
    pub pag: f32,
}

/// The label of the PAG-perturbed row of condition `label` (labels are >= 0).
pub fn perturbed_label(label: i64) -> i64 {
    -2 - label
}

/// The condition a perturbed label stands for, or `None` for a plain label.
pub fn unperturbed(label: i64) -> Option<i64> {
    (label <= -2).then_some(-2 - label)
}

impl Conditioning {
    pub(crate) fn batch(&self) -> usize {
        self.labels.len()
    }
    pub(crate) fn per_item(&self) -> usize {
        self.chw.iter().product()
    }
    pub(crate) fn doubled_labels(&self) -> Vec<i64> {
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

/// What a sampler reports to and is stopped by: the optional [`Record`] of its states, the
/// progress sink (stage `"sampling"`, steps done of steps) and the cancel token, checked after
/// every step.
pub struct Hooks<'a> {
    pub record: Option<&'a mut Record>,
    pub progress: &'a mut dyn Progress,
    pub cancel: &'a Cancel,
}

impl<'a> Hooks<'a> {
    pub fn new(progress: &'a mut dyn Progress, cancel: &'a Cancel) -> Self {
        Self {
            record: None,
            progress,
            cancel,
        }
    }

    pub fn recording(self, record: &'a mut Record) -> Self {
        Self {
            record: Some(record),
            ..self
        }
    }

    /// Records a state (when recording).
    pub(crate) fn latent(&mut self, x: &[f32]) {
        if let Some(r) = self.record.as_deref_mut() {
            r.latents.push(x.to_vec());
        }
    }

    /// Whether the progress sink wants the clean-latent estimate of each step.
    pub(crate) fn wants_estimate(&self) -> bool {
        self.progress.wants_estimate()
    }

    /// Hands the progress sink the step's clean-latent estimate.
    pub(crate) fn estimate(&mut self, x0: &[f32]) {
        self.progress.estimate(x0);
    }

    /// Reports `done` of `total` steps, then stops if cancelled.
    pub(crate) fn step(&mut self, done: usize, total: usize) -> Result<()> {
        self.progress.update("sampling", done as u64, total as u64);
        self.cancel.check()
    }
}

pub(crate) fn check_len(what: &str, got: usize, want: usize) -> Result<()> {
    if got != want {
        return Err(Error::Input(format!(
            "{what}: {got} values, expected {want}"
        )));
    }
    Ok(())
}

/// One doubled call `[x_cond; x_uncond]` with labels `[y; null]`; returns (cond, uncond) outputs.
pub(crate) fn cfg_call(
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
pub(crate) fn first_channels(out: &[f32], b: usize, chw: [usize; 3]) -> Vec<f32> {
    let per = chw.iter().product::<usize>();
    let per_out = out.len() / b;
    (0..b)
        .flat_map(|i| out[i * per_out..i * per_out + per].iter().copied())
        .collect()
}

/// Guided velocity of the flow samplers, `uncond + scale (cond - uncond)` (the SiT and Sana
/// convention), from one doubled call. Sana orders its batch `[uncond, cond]`; rows are
/// independent, so our `[cond, uncond]` gives the same values.
pub(crate) fn guided_velocity(
    net: &mut dyn Denoiser,
    cond: &Conditioning,
    x: &[f32],
    tau: f32,
    rec: &mut Option<&mut Record>,
) -> Result<Vec<f32>> {
    if let Some(tg) = cond.text {
        return text_guided(net, cond, tg, x, tau, rec);
    }
    let (b, chw) = (cond.batch(), cond.chw);
    let (c, u) = cfg_call(net, cond, x, tau, rec)?;
    let (c, u) = (first_channels(&c, b, chw), first_channels(&u, b, chw));
    Ok(u.iter()
        .zip(&c)
        .map(|(&uv, &cv)| uv + cond.cfg * (cv - uv))
        .collect())
}

/// [`TextGuidance`]'s batch and combination, one network call per evaluation.
fn text_guided(
    net: &mut dyn Denoiser,
    cond: &Conditioning,
    tg: TextGuidance,
    x: &[f32],
    tau: f32,
    rec: &mut Option<&mut Record>,
) -> Result<Vec<f32>> {
    let (b, chw) = (cond.batch(), cond.chw);
    let cfg_on = cond.cfg > 1.0;
    let pag_on = tg.pag > 0.0;
    let mut labels = Vec::with_capacity(3 * b);
    if cfg_on {
        labels.extend(std::iter::repeat_n(cond.null_class, b));
    }
    labels.extend_from_slice(&cond.labels);
    if pag_on {
        labels.extend(cond.labels.iter().map(|&l| perturbed_label(l)));
    }
    let parts = labels.len() / b;
    let mut xx = Vec::with_capacity(parts * x.len());
    for _ in 0..parts {
        xx.extend_from_slice(x);
    }
    let n = labels.len();
    let out = net.eval(&xx, n, &vec![tau; n], &labels)?;
    if out.is_empty() || out.len() % n != 0 {
        return Err(Error::Input(format!(
            "the network returned {} values for a batch of {n}",
            out.len()
        )));
    }
    if let Some(r) = rec.as_deref_mut() {
        r.nfe_tau.push(tau);
    }
    let per_part = out.len() / parts;
    let part = |k: usize| first_channels(&out[k * per_part..(k + 1) * per_part], b, chw);
    let (u, c, p) = match (cfg_on, pag_on) {
        (true, true) => (Some(part(0)), part(1), Some(part(2))),
        (true, false) => (Some(part(0)), part(1), None),
        (false, true) => (None, part(0), Some(part(1))),
        (false, false) => (None, part(0), None),
    };
    let (s, g) = (cond.cfg, tg.pag);
    Ok((0..c.len())
        .map(|i| {
            let ci = c[i];
            let mut v = match &u {
                Some(u) => u[i] + s * (ci - u[i]),
                None => ci,
            };
            if let Some(p) = &p {
                v += g * (ci - p[i]);
            }
            v
        })
        .collect())
}
