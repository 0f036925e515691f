//! The Sana transformer as the samplers see it ([`crate::diffusion::Denoiser`]): batch rows
//! are addressed by label — `i >= 0` the i-th prompt, the null class the negative prompt, and
//! [`crate::diffusion::sampler::perturbed_label`] PAG's perturbed copy of a prompt.

use burn::tensor::{Int, Tensor, TensorData};

use super::{SanaInput, SanaModel};
use crate::diffusion::class_cond::Taps;
use crate::diffusion::sampler::{Denoiser, unperturbed};
use crate::error::{Error, Result};

/// Label of the negative-prompt rows.
pub const NEGATIVE: i64 = -1;

/// Encoded prompts, on the transformer's device.
#[derive(Debug, Clone)]
pub struct TextEmbeddings {
    /// `[B + 1, T, C]`: the B prompts, then the negative prompt (zeros when there is none).
    pub rows: Tensor<3>,
    /// `[B + 1, T]`: 1 for tokens, 0 for padding.
    pub mask: Tensor<2>,
    /// Prompts (B).
    pub prompts: usize,
}

pub struct SanaDenoiser<'a> {
    pub model: &'a SanaModel,
    pub text: &'a TextEmbeddings,
    /// Sprint's embedded guidance value (`guidance_scale x guidance_embeds_scale`).
    pub guidance: Option<f32>,
    /// Factor from the sampler's time to the transformer's (`timestep_scale`).
    pub time_scale: f32,
    /// Blocks where perturbed rows take identity self-attention.
    pub pag_blocks: Vec<usize>,
    /// `[C, H, W]` of one latent.
    pub chw: [usize; 3],
    pos: Option<Tensor<3>>,
}

impl<'a> SanaDenoiser<'a> {
    pub fn new(
        model: &'a SanaModel,
        text: &'a TextEmbeddings,
        chw: [usize; 3],
        guidance: Option<f32>,
        time_scale: f32,
        pag_blocks: Vec<usize>,
    ) -> Self {
        let p = model.config.patch_size;
        let pos = model.net.pos_embed(chw[1] / p, chw[2] / p);
        Self {
            model,
            text,
            guidance,
            time_scale,
            pag_blocks,
            chw,
            pos,
        }
    }
}

impl Denoiser for SanaDenoiser<'_> {
    fn eval(&mut self, x: &[f32], n: usize, tau: &[f32], labels: &[i64]) -> Result<Vec<f32>> {
        let b = self.text.prompts;
        let mut rows = Vec::with_capacity(n);
        let mut perturbed_from = None;
        for (r, &l) in labels.iter().enumerate() {
            let (row, ptb) = match unperturbed(l) {
                Some(c) => (c, true),
                None if l == NEGATIVE => (b as i64, false),
                None => (l, false),
            };
            if !(0..b as i64).contains(&row) && row != b as i64 {
                return Err(Error::Input(format!("no prompt {row} (of {b})")));
            }
            match (ptb, perturbed_from) {
                (true, None) => perturbed_from = Some(r),
                (false, Some(_)) => {
                    return Err(Error::Input(
                        "PAG's perturbed rows must come last in the batch".into(),
                    ));
                }
                _ => {}
            }
            rows.push(row);
        }
        let dev = &self.model.device;
        let idx = Tensor::<1, Int>::from_data(TensorData::new(rows, [n]), dev);
        let caption = self.text.rows.clone().select(0, idx.clone());
        let mask = self.text.mask.clone().select(0, idx);
        let [c, h, w] = self.chw;
        let xt = Tensor::<4>::from_data(TensorData::new(x.to_vec(), [n, c, h, w]), dev);
        let timestep: Vec<f32> = tau.iter().map(|t| t * self.time_scale).collect();
        let guidance = self.guidance.map(|g| vec![g; n]);
        let input = SanaInput {
            timestep: &timestep,
            guidance: guidance.as_deref(),
            caption,
            mask,
            pag: perturbed_from.map(|from| (from, self.pag_blocks.as_slice())),
        };
        let out = self
            .model
            .forward(xt, input, self.pos.as_ref(), &mut Taps::off())?;
        out.into_data()
            .try_to_vec::<f32>()
            .map_err(|e| Error::readback("the transformer output", e))
    }
}
