//! Building blocks shared by every DC-AE component: the parameter builder (checkpoint or random
//! init), convolution, RMSNorm2d / BatchNorm2d, activations and the parameter-free reshapes
//! (pixel (un)shuffle, channel repeat-interleave / averaging, nearest x2).

use burn::module::{Module, Param, ParamId};
use burn::tensor::activation::{gelu, relu, silu};
use burn::tensor::module::{conv2d, interpolate};
use burn::tensor::ops::{ConvOptions, InterpolateMode, InterpolateOptions};
use burn::tensor::{DType, Device, Tensor, TensorData};

use crate::config::{Act, NormType};
use crate::error::Result;
use crate::weights::WeightStore;

/// Compute precision of conv weights and activations. Norm parameters and statistics, the
/// shortcut channel averaging and the attention products and normaliser stay f32 whatever this
/// is (the references upcast the same places; eps 1e-15 underflows in f16). Keeping every
/// activation in f32 instead (autocast-style) was measured on the fixtures and was no more
/// accurate there, at twice the activation memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Precision {
    #[default]
    F32,
    Bf16,
    F16,
}

impl Precision {
    pub fn dtype(self) -> DType {
        match self {
            Precision::F32 => DType::F32,
            Precision::Bf16 => DType::BF16,
            Precision::F16 => DType::F16,
        }
    }
}

impl std::str::FromStr for Precision {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "f32" | "fp32" => Ok(Precision::F32),
            "bf16" => Ok(Precision::Bf16),
            "f16" | "fp16" => Ok(Precision::F16),
            other => Err(format!("unknown precision `{other}` (f32, bf16, f16)")),
        }
    }
}

/// How a parameter is initialised when no checkpoint is given.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Init {
    /// Uniform(-1/sqrt(fan_in), 1/sqrt(fan_in)), PyTorch's default for conv weights.
    Fan(usize),
    Zeros,
    Ones,
}

/// Creates parameters either from a checkpoint (strict: name and shape checked) or randomly.
pub struct Builder<'a> {
    store: Option<&'a mut WeightStore>,
    rng: u64,
    pub(crate) device: Device,
    pub(crate) dtype: DType,
    /// Checkpoint key of every parameter built, in build order (for training and export).
    pub(crate) names: Vec<(ParamId, String)>,
}

/// A parameter's id derived from its checkpoint key (FNV-1a), so that ids are the same in
/// every run: optimizer state and EMA saved by key map back onto a rebuilt model.
pub fn param_id(key: &str) -> ParamId {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in key.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    ParamId::from(h)
}

impl<'a> Builder<'a> {
    /// Parameters come from `store`; every key and shape is checked.
    pub fn from_store(store: &'a mut WeightStore, device: &Device, precision: Precision) -> Self {
        Self {
            store: Some(store),
            rng: 0,
            device: device.clone(),
            dtype: precision.dtype(),
            names: Vec::new(),
        }
    }

    /// Parameters are random (PyTorch-style default init), seeded.
    pub fn random(seed: u64, device: &Device, precision: Precision) -> Self {
        Self {
            store: None,
            rng: seed ^ 0x9E37_79B9_7F4A_7C15,
            device: device.clone(),
            dtype: precision.dtype(),
            names: Vec::new(),
        }
    }

    fn next_uniform(&mut self) -> f32 {
        // splitmix64: tiny, portable, good enough for weight init.
        self.rng = self.rng.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 40) as f32 / (1u64 << 24) as f32
    }

    /// A parameter in the compute dtype (conv weights and biases).
    pub(crate) fn param<const D: usize>(
        &mut self,
        key: &str,
        shape: [usize; D],
        init: Init,
    ) -> Result<Param<Tensor<D>>> {
        let dtype = self.dtype;
        self.param_dtype(key, shape, init, dtype)
    }

    /// A parameter kept in f32 whatever the compute dtype (norm weights and statistics).
    pub(crate) fn param_f32<const D: usize>(
        &mut self,
        key: &str,
        shape: [usize; D],
        init: Init,
    ) -> Result<Param<Tensor<D>>> {
        self.param_dtype(key, shape, init, DType::F32)
    }

    fn param_dtype<const D: usize>(
        &mut self,
        key: &str,
        shape: [usize; D],
        init: Init,
        dtype: DType,
    ) -> Result<Param<Tensor<D>>> {
        let data = match self.store.as_deref_mut() {
            Some(store) => store.take(key, &shape)?.data,
            None => {
                let n: usize = shape.iter().product();
                match init {
                    Init::Zeros => vec![0.0; n],
                    Init::Ones => vec![1.0; n],
                    Init::Fan(fan_in) => {
                        let bound = 1.0 / (fan_in.max(1) as f32).sqrt();
                        (0..n)
                            .map(|_| (self.next_uniform() * 2.0 - 1.0) * bound)
                            .collect()
                    }
                }
            }
        };
        let t = Tensor::<D>::from_data(TensorData::new(data, shape), (&self.device, dtype));
        let mut p = Param::from_tensor(t);
        p.id = param_id(key);
        self.names.push((p.id, key.to_string()));
        Ok(p)
    }

    pub(crate) fn skip(&mut self, key: &str) {
        if let Some(store) = self.store.as_deref_mut() {
            store.skip_if_present(key);
        }
    }
}

/// 2-D convolution with square kernel, "same" padding (k/2), optional bias.
#[derive(Module, Debug)]
pub struct Conv {
    /// [out, in / groups, k, k]
    pub weight: Param<Tensor<4>>,
    /// [out]
    pub bias: Option<Param<Tensor<1>>>,
    pub stride: usize,
    pub groups: usize,
}

impl Conv {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn build(
        b: &mut Builder,
        key: &str,
        cin: usize,
        cout: usize,
        k: usize,
        stride: usize,
        groups: usize,
        bias: bool,
    ) -> Result<Self> {
        let fan_in = cin / groups * k * k;
        let weight = b.param(
            &format!("{key}.weight"),
            [cout, cin / groups, k, k],
            Init::Fan(fan_in),
        )?;
        let bias = if bias {
            Some(b.param(&format!("{key}.bias"), [cout], Init::Fan(fan_in))?)
        } else {
            None
        };
        Ok(Self {
            weight,
            bias,
            stride,
            groups,
        })
    }

    /// Runs in the weight dtype.
    ///
    /// # Shapes
    /// `[B, in, H, W] -> [B, out, H / stride, W / stride]`
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let w = self.weight.val();
        let pad = w.dims()[2] / 2;
        conv2d(
            x.cast(w.dtype()),
            w,
            self.bias.as_ref().map(|b| b.val()),
            ConvOptions::new([self.stride; 2], [pad; 2], [1, 1], self.groups),
        )
    }
}

const NORM_EPS: f64 = 1e-5;

/// RMSNorm over the channel dimension with weight and bias (diffusers `RMSNorm(bias=True)`,
/// efficientvit `TritonRMSNorm2d`). The statistic is computed in f32.
#[derive(Module, Debug)]
pub struct RmsNorm2d {
    pub weight: Param<Tensor<1>>,
    pub bias: Param<Tensor<1>>,
}

impl RmsNorm2d {
    pub(crate) fn build(b: &mut Builder, key: &str, c: usize) -> Result<Self> {
        Ok(Self {
            weight: b.param_f32(&format!("{key}.weight"), [c], Init::Ones)?,
            bias: b.param_f32(&format!("{key}.bias"), [c], Init::Zeros)?,
        })
    }

    /// # Shapes
    /// `[B, C, H, W] -> [B, C, H, W]`
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let dtype = x.dtype();
        let c = self.weight.dims()[0];
        let xf = x.cast(DType::F32);
        let ms = xf.clone().powi_scalar(2).mean_dim(1);
        let y = xf * (ms + NORM_EPS).sqrt().recip();
        let w = self.weight.val().reshape([1, c, 1, 1]);
        let bias = self.bias.val().reshape([1, c, 1, 1]);
        (y * w + bias).cast(dtype)
    }
}

/// BatchNorm2d in eval mode (running statistics).
#[derive(Module, Debug)]
pub struct BatchNorm2d {
    pub weight: Param<Tensor<1>>,
    pub bias: Param<Tensor<1>>,
    pub running_mean: Param<Tensor<1>>,
    pub running_var: Param<Tensor<1>>,
}

impl BatchNorm2d {
    pub(crate) fn build(b: &mut Builder, key: &str, c: usize) -> Result<Self> {
        let n = Self {
            weight: b.param_f32(&format!("{key}.weight"), [c], Init::Ones)?,
            bias: b.param_f32(&format!("{key}.bias"), [c], Init::Zeros)?,
            running_mean: b.param_f32(&format!("{key}.running_mean"), [c], Init::Zeros)?,
            running_var: b.param_f32(&format!("{key}.running_var"), [c], Init::Ones)?,
        };
        b.skip(&format!("{key}.num_batches_tracked"));
        Ok(n)
    }

    /// # Shapes
    /// `[B, C, H, W] -> [B, C, H, W]`
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let dtype = x.dtype();
        let c = self.weight.dims()[0];
        let scale = self.weight.val() * (self.running_var.val() + NORM_EPS).sqrt().recip();
        let shift = self.bias.val() - self.running_mean.val() * scale.clone();
        let y = x.cast(DType::F32) * scale.reshape([1, c, 1, 1]) + shift.reshape([1, c, 1, 1]);
        y.cast(dtype)
    }
}

/// The norm of a residual branch.
#[derive(Module, Debug)]
pub enum Norm {
    Rms(RmsNorm2d),
    Batch(BatchNorm2d),
}

impl Norm {
    pub(crate) fn build(b: &mut Builder, key: &str, c: usize, kind: NormType) -> Result<Self> {
        Ok(match kind {
            NormType::RmsNorm => Norm::Rms(RmsNorm2d::build(b, key, c)?),
            NormType::BatchNorm => Norm::Batch(BatchNorm2d::build(b, key, c)?),
        })
    }

    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        match self {
            Norm::Rms(n) => n.forward(x),
            Norm::Batch(n) => n.forward(x),
        }
    }
}

/// Applies an activation function.
pub fn activate<const D: usize>(x: Tensor<D>, act: Act) -> Tensor<D> {
    match act {
        Act::Relu => relu(x),
        Act::Silu => silu(x),
        Act::Gelu => gelu(x),
    }
}

/// Activation stored in a module (encoded as an index so the module derive can hold it).
pub(crate) fn act_code(a: Act) -> usize {
    match a {
        Act::Relu => 0,
        Act::Silu => 1,
        Act::Gelu => 2,
    }
}

pub(crate) fn act_from_code(c: usize) -> Act {
    match c {
        0 => Act::Relu,
        1 => Act::Silu,
        _ => Act::Gelu,
    }
}

/// `u[b, 4c + 2i + j, h, w] = x[b, c, 2h + i, 2w + j]`.
///
/// # Shapes
/// `[B, C, H, W] -> [B, 4C, H/2, W/2]`
pub fn pixel_unshuffle(x: Tensor<4>) -> Tensor<4> {
    let [b, c, h, w] = x.dims();
    x.reshape([b, c, h / 2, 2, w / 2, 2])
        .permute([0, 1, 3, 5, 2, 4])
        .reshape([b, c * 4, h / 2, w / 2])
}

/// `y[b, c, 2h + i, 2w + j] = x[b, 4c + 2i + j, h, w]`.
///
/// # Shapes
/// `[B, 4C, H, W] -> [B, C, 2H, 2W]`
pub fn pixel_shuffle(x: Tensor<4>) -> Tensor<4> {
    let [b, c4, h, w] = x.dims();
    let c = c4 / 4;
    x.reshape([b, c, 2, 2, h, w])
        .permute([0, 1, 4, 2, 5, 3])
        .reshape([b, c, h * 2, w * 2])
}

/// Each channel repeated `r` times consecutively (`torch.repeat_interleave(x, r, dim=1)`).
///
/// # Shapes
/// `[B, C, H, W] -> [B, C*r, H, W]`
pub fn repeat_interleave_channels(x: Tensor<4>, r: usize) -> Tensor<4> {
    if r == 1 {
        return x;
    }
    let [b, c, h, w] = x.dims();
    x.reshape([b, c, 1, h, w])
        .expand([b, c, r, h, w])
        .reshape([b, c * r, h, w])
}

/// Mean over groups of `g` consecutive channels (`x.unflatten(1, (-1, g)).mean(2)`).
///
/// # Shapes
/// `[B, C, H, W] -> [B, C/g, H, W]`
pub fn average_channel_groups(x: Tensor<4>, g: usize) -> Tensor<4> {
    if g == 1 {
        return x;
    }
    let [b, c, h, w] = x.dims();
    let dtype = x.dtype();
    x.cast(DType::F32)
        .reshape([b, c / g, g, h, w])
        .mean_dim(2)
        .reshape([b, c / g, h, w])
        .cast(dtype)
}

/// Nearest-neighbour x2 upsampling (`F.interpolate(scale_factor=2, mode="nearest")`).
/// Burn's interpolate kernel is 3.5x faster on CPU than an expand + reshape copy.
///
/// # Shapes
/// `[B, C, H, W] -> [B, C, 2H, 2W]`
pub fn upsample_nearest2x(x: Tensor<4>) -> Tensor<4> {
    let [_, _, h, w] = x.dims();
    interpolate(
        x,
        InterpolateOptions::new(InterpolateMode::Nearest)
            .with_align_corners(false)
            .with_output_size([h * 2, w * 2]),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest2x_repeats_each_pixel() {
        let dev = Device::flex();
        let x = Tensor::<4>::from_data(
            TensorData::new(vec![1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0], [1, 1, 2, 3]),
            &dev,
        );
        let y = upsample_nearest2x(x)
            .into_data()
            .try_to_vec::<f32>()
            .unwrap();
        let row0 = [1.0, 1.0, 2.0, 2.0, 3.0, 3.0];
        let row1 = [4.0, 4.0, 5.0, 5.0, 6.0, 6.0];
        let want: Vec<f32> = [row0, row0, row1, row1].concat();
        assert_eq!(y, want);
    }

    #[test]
    fn shuffle_unshuffle_round_trip_and_index_order() {
        let dev = Device::flex();
        let data: Vec<f32> = (0..2 * 4 * 6).map(|v| v as f32).collect();
        let x = Tensor::<4>::from_data(TensorData::new(data.clone(), [1, 2, 4, 6]), &dev);
        let u = pixel_unshuffle(x.clone());
        assert_eq!(u.dims(), [1, 8, 2, 3]);
        // u[4c + 2i + j, h, w] = x[c, 2h + i, 2w + j]: channel 5 = c 1, i 0, j 1 at (0, 0) -> x[1, 0, 1]
        let uv = u.clone().into_data().try_to_vec::<f32>().unwrap();
        assert_eq!(uv[5 * 6], data[24 + 1]);
        let back = pixel_shuffle(u).into_data().try_to_vec::<f32>().unwrap();
        assert_eq!(back, data);
    }
}
