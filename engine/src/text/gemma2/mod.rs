//! Gemma-2 (`transformers.Gemma2Model`), the text encoder of Sana: scaled token embeddings,
//! decoder layers with sandwich RMSNorms `(1 + w)`, grouped-query attention with RoPE, logit
//! softcap and sliding windows on alternate layers, and the final norm — whose output, the
//! `last_hidden_state`, is what Sana's transformer reads.
//!
//! [`config`], [`attention`], [`layer`]; this file holds the model and its loader (a
//! `text_encoder/` folder, sharded or single file, keys with or without the `model.` prefix of
//! `Gemma2ForCausalLM` checkpoints).

pub mod attention;
pub mod config;
pub mod layer;

pub use config::Gemma2Config;

use std::path::{Path, PathBuf};

use burn::module::{Module, Param};
use burn::tensor::{DType, Device, Int, Tensor, TensorData};

use crate::diffusion::class_cond::Taps;
use crate::error::{Error, Result};
use crate::nn::RmsNorm;
use crate::nn::rope::rope_tables;
use crate::weights::remap::KeyLayout;
use crate::weights::{Builder, Init, Precision, WeightStore, check_precision};
use layer::Gemma2Layer;

#[derive(Module, Debug)]
pub struct Gemma2Net {
    /// [vocab, D]
    pub embed_tokens: Param<Tensor<2>>,
    pub layers: Vec<Gemma2Layer>,
    pub norm: RmsNorm,
}

impl Gemma2Net {
    fn build(b: &mut Builder, prefix: &str, c: &Gemma2Config) -> Result<Self> {
        c.validate()?;
        Ok(Self {
            embed_tokens: b.param(
                &format!("{prefix}embed_tokens.weight"),
                [c.vocab_size, c.hidden_size],
                Init::Fan(1),
            )?,
            layers: (0..c.num_hidden_layers)
                .map(|i| Gemma2Layer::build(b, &format!("{prefix}layers.{i}"), c, i))
                .collect::<Result<_>>()?,
            norm: RmsNorm::build(
                b,
                &format!("{prefix}norm"),
                c.hidden_size,
                c.rms_norm_eps,
                1.0,
            )?,
        })
    }
}

/// A loaded Gemma-2 encoder.
pub struct Gemma2 {
    pub config: Gemma2Config,
    pub net: Gemma2Net,
    pub device: Device,
    pub precision: Precision,
    pub source: Option<PathBuf>,
}

/// The additive mask of one layer kind, `[B, 1, T, T]` on the host: 0 where query `i` may
/// read key `j` (causal, key not padding, and within `window` when sliding), else f32::MIN
/// (transformers' `finfo.min`: a row with no allowed key becomes uniform, as there).
pub fn attention_bias(mask: &[i64], b: usize, t: usize, window: Option<usize>) -> Vec<f32> {
    let mut out = Vec::with_capacity(b * t * t);
    for r in 0..b {
        let keep = &mask[r * t..(r + 1) * t];
        for i in 0..t {
            for (j, &k) in keep.iter().enumerate() {
                let ok = j <= i && k != 0 && window.is_none_or(|w| i - j < w);
                out.push(if ok { 0.0 } else { f32::MIN });
            }
        }
    }
    out
}

impl Gemma2 {
    /// Builds from a weights file or index json; the `model.` prefix is detected and the tied
    /// `lm_head.weight` of causal-LM checkpoints is ignored. Strict otherwise.
    pub fn load_weights(
        config: Gemma2Config,
        weights: &Path,
        device: &Device,
        precision: Precision,
    ) -> Result<Self> {
        check_precision(device, precision)?;
        if precision == Precision::F16 {
            return Err(Error::Unsupported(
                "Gemma-2 in f16 overflows (grey or NaN images, diffusers#10334): use bf16 or f32"
                    .into(),
            ));
        }
        config.validate()?;
        let mut store = WeightStore::from_weights(weights, Some(KeyLayout::Diffusers))?;
        let prefix = if store.dtype("model.embed_tokens.weight").is_some() {
            "model."
        } else {
            ""
        };
        let mut b = Builder::from_store(&mut store, device, precision);
        let net = Gemma2Net::build(&mut b, prefix, &config)?;
        b.skip("lm_head.weight");
        store.finish()?;
        Ok(Self {
            config,
            net,
            device: device.clone(),
            precision,
            source: Some(weights.to_path_buf()),
        })
    }

    /// A transformers `text_encoder/` folder: `config.json` + `model[.<variant>].safetensors`
    /// or its index.
    pub fn load_component(
        dir: &Path,
        variant: Option<&str>,
        device: &Device,
        precision: Precision,
    ) -> Result<Self> {
        let config = Gemma2Config::from_file(&dir.join("config.json"))?;
        let weights = crate::weights::component_weights_variant(dir, "model", variant)?;
        Self::load_weights(config, &weights, device, precision)
    }

    pub fn random(
        config: Gemma2Config,
        seed: u64,
        device: &Device,
        precision: Precision,
    ) -> Result<Self> {
        check_precision(device, precision)?;
        let mut b = Builder::random(seed, device, precision);
        let net = Gemma2Net::build(&mut b, "", &config)?;
        Ok(Self {
            config,
            net,
            device: device.clone(),
            precision,
            source: None,
        })
    }

    pub fn num_params(&self) -> usize {
        self.net.num_params()
    }

    /// `last_hidden_state` of `ids` / `mask` (`[B, T]` row-major, right padding; mask 1 = token,
    /// 0 = padding). Positions are `0..T` whatever the padding, as transformers numbers them.
    ///
    /// # Shapes
    /// `-> [B, T, D]` (f32)
    pub fn forward(
        &self,
        ids: &[i64],
        mask: &[i64],
        b: usize,
        t: usize,
        taps: &mut Taps,
    ) -> Result<Tensor<3>> {
        let c = &self.config;
        if b == 0 || t == 0 || ids.len() != b * t || mask.len() != b * t {
            return Err(Error::Input(format!(
                "text encoder input: {} ids and {} mask values for a [{b}, {t}] batch",
                ids.len(),
                mask.len()
            )));
        }
        if let Some(bad) = ids.iter().find(|&&i| i < 0 || i as usize >= c.vocab_size) {
            return Err(Error::Input(format!(
                "token id {bad} is outside the vocabulary of {} (tokenizer and text encoder \
                 do not match)",
                c.vocab_size
            )));
        }
        let dev = &self.device;
        let dtype = self.precision.dtype();
        let idt = Tensor::<1, Int>::from_data(TensorData::new(ids.to_vec(), [b * t]), dev);
        let d = c.hidden_size;
        // transformers casts sqrt(hidden) to the weight dtype before multiplying.
        let s = (d as f64).sqrt();
        let normalizer = if dtype == DType::BF16 {
            f64::from(half::bf16::from_f64(s).to_f32())
        } else {
            f64::from(s as f32)
        };
        let mut x = (self.net.embed_tokens.val().select(0, idt) * normalizer).reshape([b, t, d]);
        taps.record(|| "hidden.embeddings".into(), &x);
        let rope = rope_tables(t, c.head_dim, c.rope_theta(), dev);
        let bias = |window: Option<usize>| {
            Tensor::<4>::from_data(
                TensorData::new(attention_bias(mask, b, t, window), [b, 1, t, t]),
                dev,
            )
        };
        let full = bias(None);
        let sliding = c.sliding_window.filter(|&w| w < t).map(|w| bias(Some(w)));
        for (i, layer) in self.net.layers.iter().enumerate() {
            let m = match (&sliding, layer.sliding) {
                (Some(s), true) => s.clone(),
                _ => full.clone(),
            };
            x = layer.forward(x, m, &rope, taps, i);
            taps.record(|| format!("hidden.layer_{i}"), &x);
        }
        let out = self.net.norm.forward(x);
        taps.record(|| "last_hidden_state".into(), &out);
        Ok(out.cast(DType::F32))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mask_is_causal_padded_and_windowed() {
        let m = attention_bias(&[1, 1, 1, 0], 1, 4, Some(2));
        let ok = |i: usize, j: usize| m[i * 4 + j] == 0.0;
        assert!(ok(0, 0) && !ok(0, 1));
        assert!(
            ok(2, 1) && ok(2, 2) && !ok(2, 0),
            "window 2 drops j = i - 2"
        );
        // The padded query 3 reads the valid key 2 only (3 is padding, 1 is out of window).
        assert!(ok(3, 2) && !ok(3, 3) && !ok(3, 1));
    }
}
