//! Sana's conditioning embeddings: the timestep (and, for Sana-Sprint, guidance) embedding that
//! drives adaLN-single, the caption projection, and the 2-D sin-cos positional table of the
//! 2K / 4K models (diffusers `AdaLayerNormSingle`, `SanaCombinedTimestepGuidanceEmbeddings`,
//! `PixArtAlphaTextProjection`, `get_2d_sincos_pos_embed`).

use crate::kernels::{gelu_tanh as gelu_approximate, silu};
use burn::module::Module;
use burn::tensor::{Device, Tensor};

use crate::diffusion::class_cond::Taps;
use crate::error::Result;
use crate::nn::{Linear, timestep_embedding};
use crate::weights::Builder;

/// Width of the sinusoid every Sana time / guidance embedding starts from.
pub const FREQ_DIM: usize = 256;

/// diffusers `TimestepEmbedding`: `linear_2(SiLU(linear_1(x)))`.
#[derive(Module, Debug)]
pub struct TimestepEmbedding {
    pub linear_1: Linear,
    pub linear_2: Linear,
}

impl TimestepEmbedding {
    fn build(b: &mut Builder, key: &str, d: usize) -> Result<Self> {
        Ok(Self {
            linear_1: Linear::build(b, &format!("{key}.linear_1"), FREQ_DIM, d, true)?,
            linear_2: Linear::build(b, &format!("{key}.linear_2"), d, d, true)?,
        })
    }

    /// `[B, 256] -> [B, D]`
    fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        self.linear_2.forward(silu(self.linear_1.forward(x)))
    }
}

/// adaLN-single: `(linear(SiLU(c)) [B, 6D], c [B, D])` with `c` the timestep embedding, plus
/// the guidance embedding for Sana-Sprint (`guidance_embeds`).
///
/// Keys: `time_embed.emb.timestep_embedder.*` (plain), or `time_embed.timestep_embedder.*` +
/// `time_embed.guidance_embedder.*` (Sprint); `time_embed.linear` in both.
#[derive(Module, Debug)]
pub struct TimeEmbed {
    pub timestep_embedder: TimestepEmbedding,
    pub guidance_embedder: Option<TimestepEmbedding>,
    pub linear: Linear,
}

impl TimeEmbed {
    pub fn build(b: &mut Builder, d: usize, guidance: bool) -> Result<Self> {
        let (timestep_embedder, guidance_embedder) = if guidance {
            (
                TimestepEmbedding::build(b, "time_embed.timestep_embedder", d)?,
                Some(TimestepEmbedding::build(
                    b,
                    "time_embed.guidance_embedder",
                    d,
                )?),
            )
        } else {
            (
                TimestepEmbedding::build(b, "time_embed.emb.timestep_embedder", d)?,
                None,
            )
        };
        Ok(Self {
            timestep_embedder,
            guidance_embedder,
            linear: Linear::build(b, "time_embed.linear", d, 6 * d, true)?,
        })
    }

    /// `timestep` (and `guidance`) per row, as the transformer receives them.
    ///
    /// # Shapes
    /// `-> ([B, 6D], [B, D])`
    pub fn forward(
        &self,
        timestep: &[f32],
        guidance: Option<&[f32]>,
        device: &Device,
        taps: &mut Taps,
    ) -> (Tensor<2>, Tensor<2>) {
        let dtype = self.linear.weight.val().dtype();
        let t_freq = timestep_embedding(timestep, FREQ_DIM, device).cast(dtype);
        let sprint = self.guidance_embedder.is_some();
        let base = if sprint {
            "inter.time_embed"
        } else {
            "inter.time_embed.emb"
        };
        taps.record(
            || format!("{base}.time_proj"),
            &t_freq.clone().unsqueeze_dim(1),
        );
        let mut c = self.timestep_embedder.forward(t_freq);
        taps.record(
            || format!("{base}.timestep_embedder"),
            &c.clone().unsqueeze_dim(1),
        );
        if let (Some(ge), Some(g)) = (&self.guidance_embedder, guidance) {
            let g_freq = timestep_embedding(g, FREQ_DIM, device).cast(dtype);
            taps.record(
                || "inter.time_embed.guidance_condition_proj".into(),
                &g_freq.clone().unsqueeze_dim(1),
            );
            c = c + ge.forward(g_freq);
        }
        let t6 = self.linear.forward(silu(c.clone()));
        taps.record(|| "inter.time_embed.0".into(), &t6.clone().unsqueeze_dim(1));
        taps.record(|| "inter.time_embed.1".into(), &c.clone().unsqueeze_dim(1));
        (t6, c)
    }
}

/// `PixArtAlphaTextProjection`: `linear_2(GELU_tanh(linear_1(y)))`, caption width -> D.
#[derive(Module, Debug)]
pub struct CaptionProjection {
    pub linear_1: Linear,
    pub linear_2: Linear,
}

impl CaptionProjection {
    pub fn build(b: &mut Builder, cin: usize, d: usize) -> Result<Self> {
        Ok(Self {
            linear_1: Linear::build(b, "caption_projection.linear_1", cin, d, true)?,
            linear_2: Linear::build(b, "caption_projection.linear_2", d, d, true)?,
        })
    }

    /// `[B, T, C] -> [B, T, D]`
    pub fn forward(&self, y: Tensor<3>) -> Tensor<3> {
        self.linear_2
            .forward(gelu_approximate(self.linear_1.forward(y)))
    }
}

/// diffusers `get_2d_sincos_pos_embed(dim, (h, w), base_size, interpolation_scale)` for a
/// patch grid of `h x w`, row-major tokens, `[h w, dim]` on the host.
///
/// Coordinates are computed in f32 as torch does (`arange(n) / (n / base) / scale`), the
/// frequencies and the sin / cos in f64 (torch promotes the outer product to the float64
/// omega), rounded to f32 at the end. The first half of each row embeds the column
/// coordinate, the second the row coordinate (diffusers' meshgrid order); each half is
/// `[sin(pos w_i)..., cos(pos w_i)...]` with `w_i = 10000^(-i / (dim / 4))`.
pub fn sincos_pos_embed(dim: usize, h: usize, w: usize, base: usize, scale: f64) -> Vec<f32> {
    let quarter = dim / 4;
    let omega: Vec<f64> = (0..quarter)
        .map(|i| 1.0 / 10000f64.powf(i as f64 / (dim as f64 / 4.0)))
        .collect();
    let coord = |i: usize, n: usize| -> f64 {
        let step = (n as f64 / base as f64) as f32;
        f64::from(i as f32 / step / scale as f32)
    };
    let mut out = Vec::with_capacity(h * w * dim);
    for r in 0..h {
        for c in 0..w {
            for pos in [coord(c, w), coord(r, h)] {
                out.extend(omega.iter().map(|&o| (pos * o).sin() as f32));
                out.extend(omega.iter().map(|&o| (pos * o).cos() as f32));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Token (r, c) = (0, 0) is [0.., 1.., 0.., 1..]; token (0, 1) at base = w moves only the
    /// first (column) half by one radian at the first frequency; token (1, 0) only the second.
    #[test]
    fn sincos_layout() {
        let (dim, h, w) = (8, 2, 3);
        let e = sincos_pos_embed(dim, h, w, w, 1.0);
        assert_eq!(e.len(), h * w * dim);
        assert_eq!(&e[..8], &[0.0, 0.0, 1.0, 1.0, 0.0, 0.0, 1.0, 1.0]);
        let t01 = &e[8..16];
        assert!((t01[0] - 1f32.sin()).abs() < 1e-7 && (t01[2] - 1f32.cos()).abs() < 1e-7);
        assert!((t01[1] - 0.01f32.sin()).abs() < 1e-7);
        assert_eq!(&t01[4..], &[0.0, 0.0, 1.0, 1.0]);
        // Row coordinate with h = 2 != base 3: 1 / (2 / 3) = 1.5.
        let t10 = &e[3 * 8..4 * 8];
        assert_eq!(&t10[..4], &[0.0, 0.0, 1.0, 1.0]);
        assert!((t10[4] - 1.5f32.sin()).abs() < 1e-6);
    }
}
