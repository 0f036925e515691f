//! Growing a DC-AE by one stage (`init_match = "grow"`; paper §3.1: a higher-compression model
//! contains a lower one's stages as a sub-network). An f64c128 model starts from a trained
//! f32c32 one (or f128c512 from f64c128) in two steps:
//! 1. every tensor of the smaller model goes to the same place in the larger one
//!    ([`source_key`]: the deepest shared decoder stage gains an upsample at index 0, so its
//!    blocks move up by one);
//! 2. the *bridge* — the deepest shared stage and the new one on both sides of the latent, with
//!    `encoder.conv_out` and `decoder.conv_in` ([`in_bridge`]) — is fitted on features of the
//!    smaller model to compute what the smaller model computes over the same span, from the
//!    input of that encoder stage to the output of that decoder stage ([`fit_bridge`]).
//!
//! The larger model then starts near the smaller one rather than from a random new stage. It
//! cannot start *equal* to it: the strided-conv downsample and the interpolating upsample
//! cannot express the 2x2 space-to-channel rearrangement of the smaller latent, so step 2 is a
//! regression, cheap because everything in it runs at 1/32 and 1/64 of the image size.

use std::path::PathBuf;
use std::time::Instant;

use burn::tensor::{DType, Device, Int, Tensor, TensorData};

use super::config::GrowSection;
use super::data::{CropPlan, Loader, splitmix};
use super::optim::{AdamState, AdamW, Names, gradients, phase_lr, replace, set_trainable, values};
use super::trainer::scalar;
use crate::autoencoder::{AutoencoderDc, DcAe, DcAeConfig};
use crate::error::{Error, Result};
use crate::nn::Trace;
use crate::task::Cancel;

/// The stage a grown model adds: `small`'s stage count, after checking that `big` is `small`
/// with one more stage (every shared stage the same, the deepest one with blocks so that the
/// larger model puts a downsample / upsample after it).
pub fn new_stage(small: &DcAeConfig, big: &DcAeConfig) -> Result<usize> {
    let n = small.encoder_block_out_channels.len();
    let why = |what: &str| {
        Err(Error::Input(format!(
            "init_match = \"grow\": the model must be the init model with one more stage; {what}"
        )))
    };
    if n == 0 || small.decoder_block_out_channels.len() != n {
        return why("the init model has no stages");
    }
    let stages = [
        big.encoder_block_out_channels.len(),
        big.decoder_block_out_channels.len(),
        big.encoder_layers_per_block.len(),
        big.decoder_layers_per_block.len(),
        big.encoder_block_types.len(),
        big.decoder_block_types.len(),
    ];
    if stages.iter().any(|&s| s != n + 1) {
        return why(&format!("it has {stages:?} stages, the init model {n}"));
    }
    let same = small.encoder_block_out_channels[..] == big.encoder_block_out_channels[..n]
        && small.decoder_block_out_channels[..] == big.decoder_block_out_channels[..n]
        && small.encoder_layers_per_block[..] == big.encoder_layers_per_block[..n]
        && small.decoder_layers_per_block[..] == big.decoder_layers_per_block[..n]
        && small.encoder_block_types[..] == big.encoder_block_types[..n]
        && small.decoder_block_types[..] == big.decoder_block_types[..n]
        && small.encoder_qkv_multiscales[..] == big.encoder_qkv_multiscales[..n]
        && small.decoder_qkv_multiscales[..] == big.decoder_qkv_multiscales[..n]
        && small.decoder_norm_types[..] == big.decoder_norm_types[..n]
        && small.decoder_act_fns[..] == big.decoder_act_fns[..n];
    if !same {
        return why("their first stages differ (widths, depths, block types, norms or acts)");
    }
    let globals = small.in_channels == big.in_channels
        && small.attention_head_dim == big.attention_head_dim
        && small.downsample_block_type == big.downsample_block_type
        && small.upsample_block_type == big.upsample_block_type
        && small.resample_shortcut == big.resample_shortcut
        && small.encoder_out_shortcut == big.encoder_out_shortcut
        && small.decoder_in_shortcut == big.decoder_in_shortcut
        && small.decoder_conv_act_fn == big.decoder_conv_act_fn;
    if !globals {
        return why("their block settings differ (head dim, resampling, shortcuts or acts)");
    }
    if small.encoder_layers_per_block[n - 1] == 0 || small.decoder_layers_per_block[n - 1] == 0 {
        return why("the init model's deepest stage has no blocks");
    }
    Ok(n - 1)
}

/// The key of the smaller model's tensor that starts the larger model's `key` (`None`: a new
/// tensor), `l` being the smaller model's deepest stage ([`new_stage`]).
pub fn source_key(l: usize, key: &str) -> Option<String> {
    let prefix = format!("decoder.up_blocks.{l}.");
    let Some(rest) = key.strip_prefix(&prefix) else {
        return Some(key.to_string());
    };
    let (j, tail) = rest.split_once('.')?;
    match j.parse::<usize>().ok()? {
        // Index 0 is the upsample the larger model adds.
        0 => None,
        j => Some(format!("{prefix}{}.{tail}", j - 1)),
    }
}

/// Whether the bridge fit trains `key`: stages `l` and `l + 1` of both sides and the layers
/// next to the latent.
pub fn in_bridge(l: usize, key: &str) -> bool {
    key.starts_with("encoder.conv_out.")
        || key.starts_with("decoder.conv_in.")
        || [l, l + 1].iter().any(|i| {
            key.starts_with(&format!("encoder.down_blocks.{i}."))
                || key.starts_with(&format!("decoder.up_blocks.{i}."))
        })
}

/// Progress of [`fit_bridge`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum GrowProgress {
    /// Features of `done` of `total` crops computed.
    Features { done: usize, total: usize },
    /// Fit step `step` of `total`; `loss` is the mean squared error relative to the target's
    /// variance, averaged since the last report.
    Step { step: u64, total: u64, loss: f64 },
}

/// What a fit measured.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GrowReport {
    pub steps: u64,
    /// Relative error of the first report window and of the last one.
    pub first_loss: f64,
    pub last_loss: f64,
    pub seconds: f64,
}

/// How often [`GrowProgress::Step`] is reported.
const REPORT_EVERY: u64 = 100;
/// Crops per feature batch.
const FEATURE_BATCH: usize = 8;

/// The smaller model over the bridge's span: `x` (input of encoder stage `l`) -> output of
/// decoder stage `l`.
fn small_span(m: &AutoencoderDc, l: usize, x: Tensor<4>) -> Tensor<4> {
    let t = &mut Trace::off();
    let h = m.encoder.stage(l, x, t);
    let z = m.encoder.project_out(h, t);
    let d = m.decoder.project_in(z, t);
    m.decoder.stage(l, d, t)
}

/// The larger model over the same span (through its new stage `l + 1` and latent).
fn big_span(m: &AutoencoderDc, l: usize, x: Tensor<4>) -> Tensor<4> {
    let t = &mut Trace::off();
    let h = m.encoder.stage(l, x, t);
    let h = m.encoder.stage(l + 1, h, t);
    let z = m.encoder.project_out(h, t);
    let d = m.decoder.project_in(z, t);
    let d = m.decoder.stage(l + 1, d, t);
    m.decoder.stage(l, d, t)
}

/// The input of encoder stage `l` for an image batch.
fn trunk(m: &AutoencoderDc, l: usize, x: Tensor<4>) -> Tensor<4> {
    let t = &mut Trace::off();
    let mut h = m.encoder.stem(x);
    for i in 0..l {
        h = m.encoder.stage(i, h, t);
    }
    h
}

/// Where the fit's crops come from.
pub struct CropSource {
    pub files: Vec<PathBuf>,
    pub seed: u64,
    pub workers: usize,
    pub fail_on_bad_image: bool,
}

/// Fits the bridge of `model` (the larger model, on the autodiff device `ad`, built with
/// [`source_key`]) to `small` (on `ad`'s inner device): features of `g.crops` crops are
/// computed once, then `g.steps` AdamW steps on the mean squared error relative to the
/// target's variance. Only [`in_bridge`] parameters change. Cancel: [`Error::Cancelled`].
#[allow(clippy::too_many_arguments)]
pub fn fit_bridge(
    small: &DcAe,
    model: AutoencoderDc,
    names: &Names,
    l: usize,
    g: &GrowSection,
    crops: CropSource,
    ad: &Device,
    cancel: &Cancel,
    on: &mut dyn FnMut(GrowProgress),
) -> Result<(AutoencoderDc, GrowReport)> {
    let t0 = Instant::now();
    let device = &small.device;
    let batches = g.crops.div_ceil(FEATURE_BATCH) as u64;
    let mut loader = Loader::new(
        crops.files,
        CropPlan {
            seed: crops.seed ^ 0x6772_6f77,
            batch: FEATURE_BATCH,
            size: g.resolution,
            channel_shuffle: false,
            fail_on_bad_image: crops.fail_on_bad_image,
        },
        (0, batches),
        crops.workers,
    );
    let (mut xs, mut ys) = (Vec::new(), Vec::new());
    let mut done = 0;
    while let Some(batch) = loader.next_batch()? {
        if cancel.is_cancelled() {
            return Err(Error::Cancelled);
        }
        let x = trunk(&small.model, l, batch.to_tensor(device));
        let y = small_span(&small.model, l, x.clone());
        if xs.is_empty() {
            // All features stay in memory for the fit: refuse a crop count that cannot fit.
            let per_crop = (x.shape().num_elements() + y.shape().num_elements()) as u64 * 4
                / batch.len.max(1) as u64;
            crate::limits::check(
                &format!("grow: the features of {} crops", g.crops),
                per_crop.saturating_mul(g.crops as u64),
            )?;
        }
        ys.push(y);
        xs.push(x);
        done += batch.len;
        on(GrowProgress::Features {
            done: done.min(g.crops),
            total: g.crops,
        });
    }
    let x_all = Tensor::cat(xs, 0);
    let y_all = Tensor::cat(ys, 0);
    let n = x_all.dims()[0];
    if n == 0 {
        return Err(Error::Input("grow: no training crops".into()));
    }
    let mean = scalar(&y_all.clone().mean());
    let var = scalar(&(y_all.clone() - mean).powf_scalar(2.0).mean()).max(1e-12);

    let bridge = |k: &str| in_bridge(l, k);
    let mut model = set_trainable(model, names, ad, &bridge);
    let opt = AdamW {
        beta1: 0.9,
        beta2: 0.999,
        eps: 1e-8,
        weight_decay: 0.0,
    };
    let mut adam = AdamState::default();
    let mut rng = crops.seed ^ 0x6272_6964_6765;
    let (mut window, mut count) = (0.0, 0u64);
    let (mut first_loss, mut last_loss) = (f64::NAN, f64::NAN);
    for step in 0..g.steps {
        if cancel.is_cancelled() {
            return Err(Error::Cancelled);
        }
        let idx: Vec<i64> = (0..g.batch_size)
            .map(|_| (splitmix(&mut rng) % n as u64) as i64)
            .collect();
        let idx = Tensor::<1, Int>::from_data(TensorData::new(idx, [g.batch_size]), device);
        let x = x_all.clone().select(0, idx.clone()).autodiff();
        let y = y_all.clone().select(0, idx).autodiff();
        let out = big_span(&model, l, x);
        let dtype = out.dtype();
        let loss = (out - y.cast(dtype))
            .cast(DType::F32)
            .powf_scalar(2.0)
            .mean()
            / var;
        window += scalar(&loss);
        count += 1;
        let grads = loss.backward();
        let grads = gradients(&model, names, &grads);
        let lr = phase_lr(g.lr, 0, Some(g.lr_end), g.steps, step);
        let new = opt.step(lr, &values(&model, names), grads, &mut adam);
        model = replace(model, names, new, ad, &bridge);
        if (step + 1) % REPORT_EVERY == 0 || step + 1 == g.steps {
            let loss = window / count as f64;
            if first_loss.is_nan() {
                first_loss = loss;
            }
            last_loss = loss;
            on(GrowProgress::Step {
                step: step + 1,
                total: g.steps,
                loss,
            });
            (window, count) = (0.0, 0);
        }
    }
    let model = set_trainable(model, names, ad, &|_| true);
    Ok((
        model,
        GrowReport {
            steps: g.steps,
            first_loss,
            last_loss,
            seconds: t0.elapsed().as_secs_f64(),
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_deepest_decoder_stage_moves_up_one_index() {
        let l = 5;
        assert_eq!(
            source_key(l, "decoder.up_blocks.5.1.attn.to_q.weight").as_deref(),
            Some("decoder.up_blocks.5.0.attn.to_q.weight")
        );
        // The added upsample has no source; other stages keep their keys.
        assert_eq!(source_key(l, "decoder.up_blocks.5.0.conv.weight"), None);
        for k in [
            "decoder.up_blocks.4.0.conv.weight",
            "decoder.up_blocks.4.1.attn.to_q.weight",
            "encoder.down_blocks.5.0.attn.to_q.weight",
            "decoder.conv_in.weight",
            "decoder.up_blocks.50.1.norm.weight",
        ] {
            assert_eq!(source_key(l, k).as_deref(), Some(k));
        }
        assert_eq!(source_key(l, "decoder.up_blocks.5.x.weight"), None);
    }

    #[test]
    fn the_bridge_is_the_deepest_shared_stage_the_new_one_and_the_latent_layers() {
        let l = 5;
        for k in [
            "encoder.down_blocks.5.0.attn.to_q.weight",
            "encoder.down_blocks.5.1.conv.weight",
            "encoder.down_blocks.6.0.conv_out.norm.weight",
            "encoder.conv_out.weight",
            "decoder.conv_in.bias",
            "decoder.up_blocks.6.0.attn.to_k.weight",
            "decoder.up_blocks.5.0.conv.weight",
            "decoder.up_blocks.5.1.attn.to_v.weight",
        ] {
            assert!(in_bridge(l, k), "{k}");
        }
        for k in [
            "encoder.down_blocks.4.1.conv.weight",
            "encoder.down_blocks.50.0.x",
            "decoder.up_blocks.4.0.conv.weight",
            "encoder.conv_in.conv.weight",
            "decoder.conv_out.conv.weight",
            "decoder.norm_out.weight",
        ] {
            assert!(!in_bridge(l, k), "{k}");
        }
    }
}
