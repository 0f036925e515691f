//! `SanaTransformer2DModel` (diffusers): patch embedding (+ the 2-D sin-cos table of the 2K /
//! 4K models), adaLN-single time (and Sprint guidance) embedding, caption projection +
//! RMSNorm, the linear-attention blocks, modulated output norm, unpatchify.

use burn::module::{Module, Param};
use burn::tensor::{DType, Device, Tensor, TensorData};

use super::attention::mask_bias;
use super::block::{Perturb, SanaBlock};
use super::config::SanaConfig;
use super::embeddings::{CaptionProjection, TimeEmbed, sincos_pos_embed};
use crate::diffusion::class_cond::Taps;
use crate::error::{Error, Result};
use crate::nn::reshape::unpatchify;
use crate::nn::{LayerNorm, Linear, PatchEmbed, RmsNorm};
use crate::weights::{Builder, Init};

/// `caption_norm`'s epsilon (diffusers `RMSNorm(inner_dim, eps=1e-5)`).
const CAPTION_NORM_EPS: f64 = 1e-5;
/// `norm_out`'s epsilon (`SanaModulatedNorm(eps=1e-6)`, not configurable).
const NORM_OUT_EPS: f64 = 1e-6;

#[derive(Module, Debug)]
pub struct SanaTransformer {
    pub patch_embed: PatchEmbed,
    pub time_embed: TimeEmbed,
    pub caption_projection: CaptionProjection,
    pub caption_norm: RmsNorm,
    pub transformer_blocks: Vec<SanaBlock>,
    /// [2, D]: shift and scale of the output norm.
    pub scale_shift_table: Param<Tensor<2>>,
    pub norm_out: LayerNorm,
    pub proj_out: Linear,
    pub patch_size: usize,
    pub out_channels: usize,
    pub caption_channels: usize,
    pub in_channels: usize,
    /// The sin-cos table's base size (`sample_size / patch_size`); 0 = no positional embedding.
    pub pe_base: usize,
    /// Its interpolation scale.
    pub pe_scale: f64,
}

/// What one transformer call is conditioned on, per batch row.
pub struct SanaInput<'a> {
    /// The time the transformer sees (the scheduler's timestep x `timestep_scale`, or Sprint's
    /// `sin t / (sin t + cos t)`).
    pub timestep: &'a [f32],
    /// Sprint's embedded guidance (`guidance_scale x guidance_embeds_scale`).
    pub guidance: Option<&'a [f32]>,
    /// `[B, T, caption_channels]`: the text encoder's hidden states.
    pub caption: Tensor<3>,
    /// `[B, T]`: 1 for tokens to attend to, 0 for padding.
    pub mask: Tensor<2>,
    /// PAG: rows `from..B` take identity self-attention in these blocks.
    pub pag: Option<(usize, &'a [usize])>,
}

impl SanaTransformer {
    pub fn build(b: &mut Builder, c: &SanaConfig) -> Result<Self> {
        c.validate()?;
        let d = c.inner_dim();
        let p = c.patch_size;
        Ok(Self {
            patch_embed: PatchEmbed::build(b, "patch_embed.proj", c.in_channels, d, p)?,
            time_embed: TimeEmbed::build(b, d, c.guidance_embeds)?,
            caption_projection: CaptionProjection::build(b, c.caption_channels, d)?,
            caption_norm: RmsNorm::build(b, "caption_norm", d, CAPTION_NORM_EPS, 0.0)?,
            transformer_blocks: (0..c.num_layers)
                .map(|i| SanaBlock::build(b, &format!("transformer_blocks.{i}"), c))
                .collect::<Result<_>>()?,
            scale_shift_table: b.param("scale_shift_table", [2, d], Init::Fan(d))?,
            norm_out: LayerNorm::build(b, "norm_out", d, NORM_OUT_EPS, false)?,
            proj_out: Linear::build(b, "proj_out", d, p * p * c.out_channels(), true)?,
            patch_size: p,
            out_channels: c.out_channels(),
            caption_channels: c.caption_channels,
            in_channels: c.in_channels,
            pe_base: if c.interpolation_scale.is_some() {
                c.sample_size / p
            } else {
                0
            },
            pe_scale: c.interpolation_scale.unwrap_or(1.0),
        })
    }

    fn device(&self) -> Device {
        self.proj_out.weight.val().device()
    }

    /// The positional table for an `h x w` token grid (`None` for models without one).
    ///
    /// # Shapes
    /// `-> [1, h w, D]`
    pub fn pos_embed(&self, h: usize, w: usize) -> Option<Tensor<3>> {
        if self.pe_base == 0 {
            return None;
        }
        let d = self.proj_out.weight.dims()[1];
        let v = sincos_pos_embed(d, h, w, self.pe_base, self.pe_scale);
        Some(Tensor::from_data(
            TensorData::new(v, [1, h * w, d]),
            &self.device(),
        ))
    }

    /// One denoiser evaluation. `pos`: [`SanaTransformer::pos_embed`] for this latent size
    /// (built once per generation by the caller; rebuilt here when absent but needed).
    ///
    /// # Shapes
    /// `x: [B, C, H, W]` -> `[B, C_out, H, W]`
    pub fn forward(
        &self,
        x: Tensor<4>,
        input: SanaInput,
        pos: Option<&Tensor<3>>,
        taps: &mut Taps,
    ) -> Result<Tensor<4>> {
        let [bsz, c, h, w] = x.dims();
        let p = self.patch_size;
        let [cb, _, cc] = input.caption.dims();
        if c != self.in_channels || h % p != 0 || w % p != 0 || h == 0 || w == 0 {
            return Err(Error::Input(format!(
                "latent [{c}, {h}, {w}]: this transformer takes {} channels and sides that are \
                 multiples of {p}",
                self.in_channels
            )));
        }
        if cc != self.caption_channels {
            return Err(Error::Input(format!(
                "text embeddings are {cc} wide; this transformer takes {} (caption_channels): \
                 the text encoder does not belong to this model",
                self.caption_channels
            )));
        }
        if cb != bsz
            || input.mask.dims() != [bsz, input.caption.dims()[1]]
            || input.timestep.len() != bsz
            || input.guidance.is_some_and(|g| g.len() != bsz)
        {
            return Err(Error::Input(format!(
                "batch of {bsz} latents with {cb} captions, mask {:?}, {} timesteps",
                input.mask.dims(),
                input.timestep.len()
            )));
        }
        if self.time_embed.guidance_embedder.is_some() != input.guidance.is_some() {
            return Err(Error::Input(
                "guidance embedding: pass the guidance exactly when the model has \
                 `guidance_embeds` (Sana-Sprint)"
                    .into(),
            ));
        }
        let dev = self.device();
        let dtype = self.proj_out.weight.val().dtype();
        let (hh, ww) = (h / p, w / p);
        let mut tokens = self.patch_embed.forward(x.to_device(&dev).cast(dtype));
        let built;
        let pos = match pos {
            Some(t) => Some(t),
            None => {
                built = self.pos_embed(hh, ww);
                built.as_ref()
            }
        };
        if let Some(pe) = pos {
            tokens = (tokens.cast(DType::F32) + pe.clone()).cast(dtype);
        }
        taps.record(|| "inter.patch_embed".into(), &tokens);
        let (t6, emb) = self
            .time_embed
            .forward(input.timestep, input.guidance, &dev, taps);
        let ctx = self
            .caption_projection
            .forward(input.caption.to_device(&dev).cast(dtype));
        taps.record(|| "inter.caption_projection".into(), &ctx);
        let ctx = self.caption_norm.forward(ctx);
        taps.record(|| "inter.caption_norm".into(), &ctx);
        let bias = mask_bias(input.mask.to_device(&dev));
        let mut x = tokens;
        for (i, blk) in self.transformer_blocks.iter().enumerate() {
            let perturb = input
                .pag
                .filter(|(_, blocks)| blocks.contains(&i))
                .map(|(from, _)| Perturb { from });
            x = blk.forward(
                x,
                t6.clone(),
                ctx.clone(),
                bias.clone(),
                [hh, ww],
                perturb,
                taps,
                i,
            );
            taps.record(|| format!("inter.transformer_blocks.{i}"), &x);
        }
        let d = x.dims()[2];
        let m = self.scale_shift_table.val().unsqueeze_dim::<3>(0) + emb.unsqueeze_dim(1);
        let (shift, scale) = (m.clone().narrow(1, 0, 1), m.narrow(1, 1, 1));
        let x = self.norm_out.forward(x) * (scale + 1.0) + shift;
        taps.record(|| "inter.norm_out".into(), &x);
        let x = self.proj_out.forward(x);
        taps.record(|| "inter.proj_out".into(), &x);
        debug_assert_eq!(d, self.scale_shift_table.dims()[1]);
        Ok(unpatchify(x, hh, ww, p, self.out_channels).cast(DType::F32))
    }
}
