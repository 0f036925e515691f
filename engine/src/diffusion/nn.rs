//! Transformer pieces shared by UViT and DiT (timm `Attention` / `Mlp` semantics), with
//! PyTorch `[out, in]` Linear weights so checkpoints load without transposes on disk.

use burn::module::{Module, Param};
use burn::tensor::activation::{gelu, gelu_approximate, softmax};
use burn::tensor::module::conv2d;
use burn::tensor::ops::ConvOptions;
use burn::tensor::{DType, Device, Int, Tensor, TensorData};

use crate::error::Result;
use crate::layers::{Builder, Init};

/// `nn.Linear`: `y = x W^T + b`, over the last dimension.
#[derive(Module, Debug)]
pub struct Linear {
    /// [out, in]
    pub weight: Param<Tensor<2>>,
    /// [out]
    pub bias: Option<Param<Tensor<1>>>,
}

impl Linear {
    pub(crate) fn build(
        b: &mut Builder,
        key: &str,
        cin: usize,
        cout: usize,
        bias: bool,
    ) -> Result<Self> {
        let weight = b.param(&format!("{key}.weight"), [cout, cin], Init::Fan(cin))?;
        let bias = if bias {
            Some(b.param(&format!("{key}.bias"), [cout], Init::Fan(cin))?)
        } else {
            None
        };
        Ok(Self { weight, bias })
    }

    /// # Shapes
    /// `[..., in] -> [..., out]`
    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        let dims = x.dims();
        let w = self.weight.val();
        let [cout, cin] = w.dims();
        let rows = dims[..D - 1].iter().product::<usize>();
        let mut y = x.cast(w.dtype()).reshape([rows, cin]).matmul(w.transpose());
        if let Some(b) = &self.bias {
            y = y + b.val().reshape([1, cout]);
        }
        let mut out = dims;
        out[D - 1] = cout;
        y.reshape(out)
    }
}

/// LayerNorm over the last dimension, statistics in f32; `affine: false` is DiT's
/// `elementwise_affine=False`.
#[derive(Module, Debug)]
pub struct LayerNorm {
    pub weight: Option<Param<Tensor<1>>>,
    pub bias: Option<Param<Tensor<1>>>,
    pub eps: f64,
}

impl LayerNorm {
    pub(crate) fn build(
        b: &mut Builder,
        key: &str,
        dim: usize,
        eps: f64,
        affine: bool,
    ) -> Result<Self> {
        let (weight, bias) = if affine {
            (
                Some(b.param_f32(&format!("{key}.weight"), [dim], Init::Ones)?),
                Some(b.param_f32(&format!("{key}.bias"), [dim], Init::Zeros)?),
            )
        } else {
            (None, None)
        };
        Ok(Self { weight, bias, eps })
    }

    /// # Shapes
    /// `[B, L, D] -> [B, L, D]`
    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let dtype = x.dtype();
        let d = x.dims()[2];
        let x = x.cast(DType::F32);
        let mean = x.clone().mean_dim(2);
        let xc = x - mean;
        let var = xc.clone().powi_scalar(2).mean_dim(2);
        let mut y = xc * (var + self.eps).sqrt().recip();
        if let (Some(w), Some(b)) = (&self.weight, &self.bias) {
            y = y * w.val().reshape([1, 1, d]) + b.val().reshape([1, 1, d]);
        }
        y.cast(dtype)
    }
}

/// Multi-head self-attention: fused `qkv` split as `(3, heads, head_dim)` along the features,
/// `softmax(q k^T / sqrt(head_dim)) v` in f32 (the reference casts q/k/v to f32), `proj`.
#[derive(Module, Debug)]
pub struct Attention {
    pub qkv: Linear,
    pub proj: Linear,
    pub heads: usize,
}

impl Attention {
    pub(crate) fn build(
        b: &mut Builder,
        key: &str,
        dim: usize,
        heads: usize,
        qkv_bias: bool,
    ) -> Result<Self> {
        Ok(Self {
            qkv: Linear::build(b, &format!("{key}.qkv"), dim, 3 * dim, qkv_bias)?,
            proj: Linear::build(b, &format!("{key}.proj"), dim, dim, true)?,
            heads,
        })
    }

    /// # Shapes
    /// `[B, L, D] -> [B, L, D]`
    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let [bsz, l, d] = x.dims();
        let (h, dh) = (self.heads, d / self.heads);
        let dtype = x.dtype();
        let qkv = self
            .qkv
            .forward(x)
            .cast(DType::F32)
            .reshape([bsz, l, 3, h, dh])
            .permute([2, 0, 3, 1, 4]);
        let part = |i: usize| qkv.clone().narrow(0, i, 1).reshape([bsz, h, l, dh]);
        let (q, k, v) = (part(0), part(1), part(2));
        let scores = q.matmul(k.swap_dims(2, 3)) * (1.0 / (dh as f64).sqrt());
        let o = softmax(scores, 3).matmul(v);
        let o = o.swap_dims(1, 2).reshape([bsz, l, d]).cast(dtype);
        self.proj.forward(o)
    }
}

/// timm `Mlp`: fc1, GELU (exact or tanh), fc2.
#[derive(Module, Debug)]
pub struct Mlp {
    pub fc1: Linear,
    pub fc2: Linear,
    pub tanh_gelu: bool,
}

impl Mlp {
    pub(crate) fn build(
        b: &mut Builder,
        key: &str,
        dim: usize,
        hidden: usize,
        tanh_gelu: bool,
    ) -> Result<Self> {
        Ok(Self {
            fc1: Linear::build(b, &format!("{key}.fc1"), dim, hidden, true)?,
            fc2: Linear::build(b, &format!("{key}.fc2"), hidden, dim, true)?,
            tanh_gelu,
        })
    }

    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let h = self.fc1.forward(x);
        let h = if self.tanh_gelu {
            gelu_approximate(h)
        } else {
            gelu(h)
        };
        self.fc2.forward(h)
    }
}

/// Conv2d with kernel = stride = p (patch embedding), flattened to tokens.
#[derive(Module, Debug)]
pub struct PatchEmbed {
    /// [D, C, p, p]
    pub weight: Param<Tensor<4>>,
    pub bias: Param<Tensor<1>>,
}

impl PatchEmbed {
    pub(crate) fn build(
        b: &mut Builder,
        key: &str,
        cin: usize,
        dim: usize,
        p: usize,
    ) -> Result<Self> {
        let fan = cin * p * p;
        Ok(Self {
            weight: b.param(&format!("{key}.weight"), [dim, cin, p, p], Init::Fan(fan))?,
            bias: b.param(&format!("{key}.bias"), [dim], Init::Fan(fan))?,
        })
    }

    /// # Shapes
    /// `[B, C, H, W] -> [B, (H/p)(W/p), D]` (row-major tokens)
    pub fn forward(&self, x: Tensor<4>) -> Tensor<3> {
        let w = self.weight.val();
        let p = w.dims()[2];
        let y = conv2d(
            x.cast(w.dtype()),
            w,
            Some(self.bias.val()),
            ConvOptions::new([p, p], [0, 0], [1, 1], 1),
        );
        let [bsz, d, h, ww] = y.dims();
        y.reshape([bsz, d, h * ww]).swap_dims(1, 2)
    }
}

/// `[B, h*w, p*p*C] -> [B, C, h*p, w*p]` (einops `B (h w) (p1 p2 C) -> B C (h p1) (w p2)`).
pub fn unpatchify(x: Tensor<3>, h: usize, w: usize, p: usize, c: usize) -> Tensor<4> {
    let bsz = x.dims()[0];
    x.reshape([bsz, h, w, p, p, c])
        .permute([0, 5, 1, 3, 2, 4])
        .reshape([bsz, c, h * p, w * p])
}

/// Class embedding table (`embedding_table.weight`, num_classes + 1 rows; the last is null).
#[derive(Module, Debug)]
pub struct LabelEmbed {
    pub table: Param<Tensor<2>>,
}

impl LabelEmbed {
    pub(crate) fn build(b: &mut Builder, key: &str, rows: usize, dim: usize) -> Result<Self> {
        Ok(Self {
            table: b.param(
                &format!("{key}.embedding_table.weight"),
                [rows, dim],
                Init::Fan(1),
            )?,
        })
    }

    pub fn rows(&self) -> usize {
        self.table.dims()[0]
    }

    /// # Shapes
    /// `[B] -> [B, D]`
    pub fn forward(&self, y: Tensor<1, Int>) -> Tensor<2> {
        self.table.val().select(0, y)
    }
}

/// The sinusoidal timestep embedding of U-ViT / DiT, `cat(cos(t f), sin(t f))` with
/// `f_i = exp(-ln(10000) i / (dim/2))`, built in f32 on the host the way the references build
/// it (at t ~ 1000 one f32 ulp of the argument moves the output by ~1e-5).
pub fn timestep_embedding(t: &[f32], dim: usize, device: &Device) -> Tensor<2> {
    let half = dim / 2;
    let c = -(10000f64.ln()) as f32;
    let freqs: Vec<f32> = (0..half)
        .map(|i| (c * i as f32 / half as f32).exp())
        .collect();
    let mut v = Vec::with_capacity(t.len() * dim);
    for &tv in t {
        let args: Vec<f32> = freqs.iter().map(|&f| tv * f).collect();
        v.extend(args.iter().map(|a| a.cos()));
        v.extend(args.iter().map(|a| a.sin()));
        v.extend(std::iter::repeat_n(0.0, dim - 2 * half));
    }
    Tensor::from_data(TensorData::new(v, [t.len(), dim]), device)
}

/// Class ids as a device tensor, checked against the table size.
pub fn labels_tensor(labels: &[i64], rows: usize, device: &Device) -> Result<Tensor<1, Int>> {
    if let Some(bad) = labels.iter().find(|&&l| l < 0 || l as usize >= rows) {
        return Err(crate::error::Error::Input(format!(
            "class id {bad} is out of range (the model has {} classes plus the null class {})",
            rows - 1,
            rows - 1
        )));
    }
    let v: Vec<i64> = labels.to_vec();
    Ok(Tensor::from_data(
        TensorData::new(v, [labels.len()]),
        device,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// einops `B (h w) (p1 p2 C) -> B C (h p1) (w p2)`: token value encodes (h, w, p1, p2, c).
    #[test]
    fn unpatchify_follows_the_einops_pattern() {
        let (h, w, p, c) = (2, 3, 2, 3);
        let code = |hh: usize, ww: usize, p1: usize, p2: usize, cc: usize| {
            (hh * 10000 + ww * 1000 + p1 * 100 + p2 * 10 + cc) as f32
        };
        let mut v = Vec::new();
        for hh in 0..h {
            for ww in 0..w {
                for p1 in 0..p {
                    for p2 in 0..p {
                        for cc in 0..c {
                            v.push(code(hh, ww, p1, p2, cc));
                        }
                    }
                }
            }
        }
        let dev = Device::flex();
        let x = Tensor::<3>::from_data(TensorData::new(v, [1, h * w, p * p * c]), &dev);
        let y = unpatchify(x, h, w, p, c);
        assert_eq!(y.dims(), [1, c, h * p, w * p]);
        let y = y.into_data().try_to_vec::<f32>().unwrap();
        let (hp, wp) = (h * p, w * p);
        for cc in 0..c {
            for r in 0..hp {
                for col in 0..wp {
                    let want = code(r / p, col / p, r % p, col % p, cc);
                    assert_eq!(
                        y[cc * hp * wp + r * wp + col],
                        want,
                        "c {cc} at ({r}, {col})"
                    );
                }
            }
        }
    }

    /// `cat(cos, sin)` with `f_i = exp(-ln(1e4) i / half)`: at t = 0 cos = 1, sin = 0, and the
    /// first frequency is 1 (so column 0 is cos t, column half is sin t).
    #[test]
    fn timestep_embedding_layout() {
        let dev = Device::flex();
        let e = timestep_embedding(&[0.0, 2.0], 8, &dev)
            .into_data()
            .try_to_vec::<f32>()
            .unwrap();
        assert_eq!(&e[..8], &[1.0, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0]);
        assert!((e[8] - 2f32.cos()).abs() < 1e-7);
        assert!((e[12] - 2f32.sin()).abs() < 1e-7);
        // Last frequency: 1e4^(-3/4) = 1e-3.
        assert!((e[15] - (2.0f32 * 1e-3).sin()).abs() < 1e-6);
    }
}
