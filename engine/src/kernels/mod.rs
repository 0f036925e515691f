//! Our own CPU kernels for the hot element-wise and normalisation ops, reached through Burn's
//! `extension` API (`Tensor::into_dispatch` / `from_dispatch` and `burn_flex::FlexTensor`):
//! rayon-threaded, vectorised for the CPU's best instruction set at run time ([`Level`]), and
//! in place when the input buffer is not shared. Burn-flex runs these ops as scalar,
//! single-threaded loops (sigmoid calls libm per value; SiLU and RMSNorm are several passes).
//!
//! Each entry point takes and returns a `Tensor`: a contiguous f32 tensor on the Flex device
//! without autodiff gets the kernel; anything else (wgpu, CUDA, bf16, autodiff during
//! training, strided views) goes through Burn's own op, so results and gradients elsewhere are
//! unchanged. `DCAE_KERNELS=burn` turns the kernels off (to compare).

mod conv;
mod grad;
mod norm;
mod simd;

use std::sync::OnceLock;

use burn::tensor::{Bytes, DType, Tensor, activation};
use burn_dispatch::{
    BackendTensor, DispatchAutodiffContext, DispatchDevice, DispatchTensor, DispatchTensorKind,
    GradientCheckpointingStrategy,
};
use burn_flex::{FlexTensor, Layout};

pub use conv::ConvShape;
pub use simd::{Level, Unary};

/// Whether our kernels are on (`DCAE_KERNELS=burn` turns them off).
pub fn enabled() -> bool {
    static ON: OnceLock<bool> = OnceLock::new();
    *ON.get_or_init(|| std::env::var("DCAE_KERNELS").ok().as_deref() != Some("burn"))
}

/// SiLU, `x * sigmoid(x)`.
pub fn silu<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    unary(x, Unary::Silu)
}

/// `1 / (1 + e^-x)`.
pub fn sigmoid<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    unary(x, Unary::Sigmoid)
}

/// GELU with the exact erf (PyTorch `gelu`).
pub fn gelu<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    unary(x, Unary::Gelu)
}

/// GELU with the tanh approximation (PyTorch `gelu(approximate="tanh")`).
pub fn gelu_tanh<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    unary(x, Unary::GeluTanh)
}

/// `op(x)` with our kernel where it applies, Burn's op otherwise.
pub fn unary<const D: usize>(x: Tensor<D>, op: Unary) -> Tensor<D> {
    unary_at(x, op, Level::detected())
}

fn unary_at<const D: usize>(x: Tensor<D>, op: Unary, level: Level) -> Tensor<D> {
    match prim(x) {
        Ok(Prim::Ad(t, strategy)) if op == Unary::Silu => {
            from_ad(grad::silu(strategy, t), strategy)
        }
        Ok(Prim::Ad(t, strategy)) => burn_unary(from_ad(t, strategy), op),
        Ok(Prim::Plain(mut t)) => {
            if let Some(xs) = unique_values(&mut t) {
                simd::map_par(level, op, xs);
                return from_flex(t);
            }
            let src = values(&t);
            let mut out = vec![0.0f32; src.len()];
            simd::map_par_into(level, op, src, &mut out);
            from_flex(new_flex(out, t.layout().shape().clone()))
        }
        Err(x) => burn_unary(x, op),
    }
}

/// Burn's own op (the reference the kernels are tested against).
pub fn burn_unary<const D: usize>(x: Tensor<D>, op: Unary) -> Tensor<D> {
    match op {
        Unary::Silu => activation::silu(x),
        Unary::Sigmoid => activation::sigmoid(x),
        Unary::Gelu => activation::gelu(x),
        Unary::GeluTanh => activation::gelu_approximate(x),
    }
}

/// `value * silu(gate)` where `value` and `gate` are the two channel halves of `h`:
/// `[B, 2C, H, W] -> [B, C, H, W]` (GLUMBConv's gate), one pass, no copies of the halves.
pub fn glu_silu(h: Tensor<4>) -> Tensor<4> {
    let [b, c2, hh, ww] = h.dims();
    let c = c2 / 2;
    if c2 % 2 == 0 {
        match flex_f32(h) {
            Ok(t) => {
                let out = norm::glu_silu(Level::detected(), values(&t), b, c, hh * ww);
                return from_flex(new_flex(out, [b, c, hh, ww].into()));
            }
            Err(x) => return burn_glu_silu(x),
        }
    }
    burn_glu_silu(h)
}

/// Burn's ops for [`glu_silu`].
pub fn burn_glu_silu(h: Tensor<4>) -> Tensor<4> {
    let c = h.dims()[1] / 2;
    let value = h.clone().narrow(1, 0, c);
    value * activation::silu(h.narrow(1, c, c))
}

/// RMSNorm over channels with weight and bias, `[B, C, H, W]`, statistic in f32:
/// `x / sqrt(mean_c(x^2) + eps) * w[c] + b[c]`. `None` when the kernel does not apply (the
/// caller then runs Burn's ops); the input comes back in that case.
// The input comes back by value when the kernel does not apply: no copy, so no box.
#[allow(clippy::result_large_err)]
pub fn rms_norm_2d(
    x: Tensor<4>,
    weight: &Tensor<1>,
    bias: &Tensor<1>,
    eps: f32,
) -> Result<Tensor<4>, Tensor<4>> {
    let [b, c, h, w] = x.dims();
    let (Ok(wt), Ok(bt)) = (flex_f32(weight.clone()), flex_f32(bias.clone())) else {
        return Err(x);
    };
    let mut t = flex_f32(x)?;
    let (wv, bv) = (values(&wt), values(&bt));
    if wv.len() != c || bv.len() != c {
        return Err(from_flex(t));
    }
    let level = Level::detected();
    let hw = h * w;
    let inv = norm::rms_inv(level, values(&t), b, c, hw, eps);
    if let Some(xs) = unique_values(&mut t) {
        norm::rms_apply_in_place(xs, &inv, wv, bv, c, hw);
        return Ok(from_flex(t));
    }
    let out = norm::rms_apply(values(&t), &inv, wv, bv, c, hw);
    Ok(from_flex(new_flex(out, [b, c, h, w].into())))
}

/// 2-D convolution with zero padding `pad` on every side: `[B, Cin, H, W] * [Cout, Cin /
/// groups, k, k] (+ [Cout]) -> [B, Cout, OH, OW]`. Our kernels take dense convs (one group,
/// any kernel size and stride) and stride-1 depthwise convs of contiguous f32 Flex tensors;
/// `Err(x)` gives the input back for everything else (the caller runs Burn's op).
// The input comes back by value when the kernel does not apply: no copy, so no box.
#[allow(clippy::result_large_err)]
pub fn conv2d(
    x: Tensor<4>,
    weight: &Tensor<4>,
    bias: Option<&Tensor<1>>,
    stride: usize,
    pad: usize,
    groups: usize,
) -> Result<Tensor<4>, Tensor<4>> {
    let [b, cin, h, w] = x.dims();
    let [cout, cpg, k, k2] = weight.dims();
    let s = ConvShape {
        b,
        cin,
        h,
        w,
        cout,
        k,
        stride,
        pad,
    };
    let dense = groups == 1 && cpg == cin;
    let depthwise = groups == cin && cout == cin && cpg == 1 && stride == 1;
    let Some((oh, ow)) = s.out_hw().filter(|_| k == k2 && (dense || depthwise)) else {
        return Err(x);
    };
    let meta = grad::ConvMeta {
        shape: s,
        depthwise: !dense,
    };
    let out_shape = [b, cout, oh, ow];
    let (Ok(wt), Ok(bt)) = (
        prim(weight.clone()),
        bias.map(|t| prim(t.clone())).transpose(),
    ) else {
        return Err(x);
    };
    let lens_ok = |w: &FlexTensor, b: Option<&FlexTensor>| {
        values(w).len() == cout * cpg * k * k && b.is_none_or(|b| values(b).len() == cout)
    };
    match (prim(x)?, wt, bt) {
        (Prim::Plain(xt), Prim::Plain(wt), bt) => {
            let bt = match bt {
                Some(Prim::Plain(t)) => Some(t),
                None => None,
                Some(_) => return Err(from_flex(xt)),
            };
            if values(&xt).len() != b * cin * h * w || !lens_ok(&wt, bt.as_ref()) {
                return Err(from_flex(xt));
            }
            let out = meta.forward(values(&xt), values(&wt), bt.as_ref().map(values));
            Ok(from_flex(new_flex(out, out_shape.into())))
        }
        (Prim::Ad(xt, strategy), Prim::Ad(wt, _), bt) => {
            let bt = match bt {
                Some(Prim::Ad(t, _)) => Some(t),
                None => None,
                Some(_) => return Err(from_ad(xt, strategy)),
            };
            let ok = values(xt.primitive()).len() == b * cin * h * w
                && lens_ok(wt.primitive(), bt.as_ref().map(|t| t.primitive()));
            if !ok {
                return Err(from_ad(xt, strategy));
            }
            Ok(from_ad(grad::conv(strategy, xt, wt, bt, meta), strategy))
        }
        (x, _, _) => Err(x.into_tensor()),
    }
}

// --- the bridge to burn-flex ---------------------------------------------------------------

/// The Flex primitive of a contiguous f32 tensor without autodiff, or the tensor unchanged.
#[allow(clippy::result_large_err)]
fn flex_f32<const D: usize>(x: Tensor<D>) -> Result<FlexTensor, Tensor<D>> {
    // Decided from the device and dtype first, so a wgpu / CUDA / autodiff tensor (or a bf16
    // one) never leaves Burn's tensor type: its fusion graph and rounding stay as they were.
    let on_flex = matches!(x.device().as_dispatch(), DispatchDevice::Flex(_));
    if !enabled() || !on_flex || x.dtype() != DType::F32 {
        return Err(x);
    }
    let d = x.into_dispatch();
    match d {
        DispatchTensor {
            kind: DispatchTensorKind::Flex(BackendTensor::Float(t)),
            autodiff: DispatchAutodiffContext::Disabled,
        } if t.dtype() == DType::F32 && t.layout().contiguous_offsets().is_some() => Ok(t),
        d => Err(Tensor::from_dispatch(d)),
    }
}

/// A contiguous f32 tensor of the Flex backend: plain (inference) or tracked by autodiff
/// (training, with the device's checkpointing strategy).
enum Prim {
    Plain(FlexTensor),
    Ad(grad::AdTensor, GradientCheckpointingStrategy),
}

impl Prim {
    fn into_tensor<const D: usize>(self) -> Tensor<D> {
        match self {
            Prim::Plain(t) => from_flex(t),
            Prim::Ad(t, s) => from_ad(t, s),
        }
    }
}

/// [`flex_f32`] for autodiff tensors too.
#[allow(clippy::result_large_err)]
fn prim<const D: usize>(x: Tensor<D>) -> Result<Prim, Tensor<D>> {
    let on_flex = match x.device().as_dispatch() {
        DispatchDevice::Flex(_) => true,
        DispatchDevice::Autodiff(d) => matches!(**d, DispatchDevice::Flex(_)),
        _ => false,
    };
    if !enabled() || !on_flex || x.dtype() != DType::F32 {
        return Err(x);
    }
    let ok = |t: &FlexTensor| t.dtype() == DType::F32 && t.layout().contiguous_offsets().is_some();
    match x.into_dispatch() {
        DispatchTensor {
            kind: DispatchTensorKind::Flex(BackendTensor::Float(t)),
            autodiff: DispatchAutodiffContext::Disabled,
        } if ok(&t) => Ok(Prim::Plain(t)),
        DispatchTensor {
            kind: DispatchTensorKind::Autodiff(inner),
            autodiff: DispatchAutodiffContext::Enabled(strategy),
        } => match *inner {
            DispatchTensorKind::Flex(BackendTensor::Autodiff(t)) if ok(t.primitive()) => {
                Ok(Prim::Ad(t, strategy))
            }
            inner => Err(Tensor::from_dispatch(DispatchTensor {
                kind: DispatchTensorKind::Autodiff(Box::new(inner)),
                autodiff: DispatchAutodiffContext::Enabled(strategy),
            })),
        },
        d => Err(Tensor::from_dispatch(d)),
    }
}

fn from_ad<const D: usize>(
    t: grad::AdTensor,
    strategy: GradientCheckpointingStrategy,
) -> Tensor<D> {
    Tensor::from_dispatch(DispatchTensor {
        kind: DispatchTensorKind::Autodiff(Box::new(DispatchTensorKind::Flex(
            BackendTensor::Autodiff(t),
        ))),
        autodiff: DispatchAutodiffContext::Enabled(strategy),
    })
}

fn from_flex<const D: usize>(t: FlexTensor) -> Tensor<D> {
    Tensor::from_dispatch(DispatchTensor {
        kind: DispatchTensorKind::Flex(BackendTensor::Float(t)),
        autodiff: DispatchAutodiffContext::Disabled,
    })
}

fn new_flex(values: Vec<f32>, shape: burn::tensor::Shape) -> FlexTensor {
    FlexTensor::new(
        Bytes::from_elems(values),
        Layout::contiguous(shape),
        DType::F32,
    )
}

/// The tensor's values (checked contiguous f32 by [`flex_f32`]).
fn values(t: &FlexTensor) -> &[f32] {
    t.as_slice::<f32>().unwrap_or(&[])
}

/// The tensor's values, writable, when no other tensor shares the buffer.
fn unique_values(t: &mut FlexTensor) -> Option<&mut [f32]> {
    let (start, end) = t.layout().contiguous_offsets()?;
    t.try_storage_mut::<f32>()
        .and_then(|s| s.get_mut(start..end))
}

/// A Flex tensor of `values` (tests).
#[cfg(test)]
fn flex_tensor<const D: usize>(values: Vec<f32>, shape: [usize; D]) -> Tensor<D> {
    Tensor::from_data(
        burn::tensor::TensorData::new(values, shape),
        &burn::tensor::Device::flex(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::TensorData;

    fn ramp(n: usize, seed: usize) -> Vec<f32> {
        (0..n)
            .map(|i| (((i + seed) * 7919) % 10007) as f32 * 2e-3 - 10.0)
            .collect()
    }

    fn to_vec<const D: usize>(t: Tensor<D>) -> Vec<f32> {
        t.into_data()
            .convert::<f32>()
            .try_into_vec::<f32>()
            .unwrap_or_default()
    }

    fn assert_close(got: &[f32], want: &[f32], abs: f32, rel: f32, what: &str) {
        assert_eq!(got.len(), want.len(), "{what}: length");
        for (i, (g, w)) in got.iter().zip(want).enumerate() {
            let tol = abs + rel * w.abs();
            assert!((g - w).abs() <= tol, "{what}[{i}]: {g} vs {w}");
        }
    }

    #[test]
    fn unary_kernels_match_burns_ops_on_every_level_and_size() {
        // Edge sizes: empty, one value, not a multiple of any vector width, several chunks.
        for n in [0usize, 1, 7, 17, 1000, simd::CHUNK + 3, 2 * simd::CHUNK + 1] {
            let v = ramp(n, n);
            for op in [Unary::Silu, Unary::Sigmoid, Unary::Gelu, Unary::GeluTanh] {
                let want = to_vec(burn_unary(flex_tensor(v.clone(), [n]), op));
                for level in Level::available() {
                    // A unique buffer (in place) and a shared one (new output).
                    let t = flex_tensor(v.clone(), [n]);
                    let got = to_vec(unary_at(t, op, level));
                    let keep = flex_tensor(v.clone(), [n]);
                    let shared = to_vec(unary_at(keep.clone(), op, level));
                    // Burn's gelu/erf and ours differ by erf's error (3e-7) times x/2.
                    assert_close(&got, &want, 3e-6, 1e-6, &format!("{op:?} {level:?} {n}"));
                    assert_eq!(got, shared, "{op:?} {level:?} {n}: shared input");
                    assert_eq!(to_vec(keep), v, "the shared input was written to");
                }
            }
        }
    }

    #[test]
    fn strided_tensors_take_burns_path_and_autodiff_silu_matches_burns() {
        let v = ramp(24, 3);
        let t = flex_tensor(v.clone(), [2, 3, 4]).swap_dims(0, 2);
        let want = to_vec(burn_unary(t.clone(), Unary::Silu));
        assert_eq!(to_vec(silu(t)), want);
        // Training: our SiLU op (value and gradient) against Burn's, through a product so the
        // upstream gradient is not all ones.
        let dev = burn::tensor::Device::flex().autodiff();
        let up = Tensor::<1>::from_data(TensorData::new(ramp(24, 8), [24]), &dev);
        let run = |ours: bool| {
            let x = Tensor::<1>::from_data(TensorData::new(v.clone(), [24]), &dev).require_grad();
            let y = if ours {
                silu(x.clone())
            } else {
                burn_unary(x.clone(), Unary::Silu)
            };
            let grads = (y.clone() * up.clone()).sum().backward();
            (to_vec(y), x.grad(&grads).map(to_vec).unwrap_or_default())
        };
        let ((y, g), (yr, gr)) = (run(true), run(false));
        assert_eq!(g.len(), 24, "autodiff tensor lost its gradient");
        // Both sigmoids are within a few ulp of exact; `x (1 - s)` scales that by |x| <= 10
        // and the upstream gradient by up to 10.
        assert_close(&y, &yr, 2e-6, 2e-6, "silu");
        assert_close(&g, &gr, 5e-5, 2e-6, "silu grad");
    }

    #[test]
    fn glu_silu_matches_burns_narrow_and_multiply() {
        for (b, c, h, w) in [(1, 1, 1, 1), (2, 3, 5, 7), (1, 8, 64, 64)] {
            let v = ramp(b * 2 * c * h * w, c);
            let want = to_vec(burn_glu_silu(flex_tensor(v.clone(), [b, 2 * c, h, w])));
            let got = to_vec(glu_silu(flex_tensor(v, [b, 2 * c, h, w])));
            assert_close(&got, &want, 3e-6, 1e-6, "glu_silu");
        }
    }

    #[test]
    fn rms_norm_2d_matches_the_op_by_op_form() {
        for (b, c, h, w) in [
            (1, 1, 1, 1),
            (2, 3, 5, 7),
            (1, 32, 40, 33),
            (2, 128, 16, 16),
        ] {
            let v = ramp(b * c * h * w, h);
            let wv = ramp(c, 1);
            let bv = ramp(c, 2);
            let x = flex_tensor(v.clone(), [b, c, h, w]);
            let wt = flex_tensor(wv.clone(), [c]);
            let bt = flex_tensor(bv.clone(), [c]);
            let ms = x.clone().powi_scalar(2).mean_dim(1);
            let want = x.clone() * (ms + 1e-5).sqrt().recip() * wt.clone().reshape([1, c, 1, 1])
                + bt.clone().reshape([1, c, 1, 1]);
            let want = to_vec(want);
            // Into a new buffer (`x` is still held) and in place (a unique input).
            let shared = rms_norm_2d(x.clone(), &wt, &bt, 1e-5).map(to_vec);
            let got = rms_norm_2d(flex_tensor(v, [b, c, h, w]), &wt, &bt, 1e-5).map(to_vec);
            let (Ok(got), Ok(shared)) = (got, shared) else {
                panic!("kernel refused a contiguous f32 flex tensor");
            };
            // Sums over c in another order: a few ulp of |x/rms * w| (up to ~1e2 here).
            assert_close(&got, &want, 1e-5, 2e-6, &format!("rms {b}x{c}x{h}x{w}"));
            assert_eq!(got, shared);
        }
    }

    /// `conv2d` through our kernels and through Burn's op, on `dev`, with the upstream gradient
    /// `g` (so `dy = g`); returns (output, [dx, dw, db]) of each, and the magnitudes `sum |a b|`
    /// that bound their rounding (Burn's op on absolute values).
    #[allow(clippy::type_complexity)]
    fn conv_both(
        shape: [usize; 4],
        wshape: [usize; 4],
        bias: bool,
        stride: usize,
        groups: usize,
    ) -> [(Vec<f32>, Vec<Vec<f32>>); 3] {
        let dev = burn::tensor::Device::flex().autodiff();
        let pad = wshape[2] / 2;
        let n = |d: &[usize]| d.iter().product::<usize>();
        let xv = ramp(n(&shape), 5);
        let wv: Vec<f32> = ramp(n(&wshape), 9).iter().map(|v| v * 0.1).collect();
        let bv = ramp(wshape[0], 3);
        let run = |ours: bool, abs: bool| {
            let f = |v: &[f32]| -> Vec<f32> {
                if abs {
                    v.iter().map(|x| x.abs()).collect()
                } else {
                    v.to_vec()
                }
            };
            let x = Tensor::<4>::from_data(TensorData::new(f(&xv), shape), &dev).require_grad();
            let w = Tensor::<4>::from_data(TensorData::new(f(&wv), wshape), &dev).require_grad();
            let b = bias.then(|| {
                Tensor::<1>::from_data(TensorData::new(f(&bv), [wshape[0]]), &dev).require_grad()
            });
            let y = if ours {
                conv2d(x.clone(), &w, b.as_ref(), stride, pad, groups)
                    .unwrap_or_else(|_| panic!("our conv refused {shape:?} {wshape:?}"))
            } else {
                burn::tensor::module::conv2d(
                    x.clone(),
                    w.clone(),
                    b.clone(),
                    burn::tensor::ops::ConvOptions::new([stride; 2], [pad; 2], [1, 1], groups),
                )
            };
            let g = Tensor::<4>::from_data(
                TensorData::new(f(&ramp(y.shape().num_elements(), 7)), y.dims()),
                &dev,
            );
            let grads = (y.clone() * g).sum().backward();
            let mut gs = vec![
                x.grad(&grads).map(to_vec).unwrap_or_default(),
                w.grad(&grads).map(to_vec).unwrap_or_default(),
            ];
            if let Some(b) = &b {
                gs.push(b.grad(&grads).map(to_vec).unwrap_or_default());
            }
            (to_vec(y), gs)
        };
        [run(true, false), run(false, false), run(false, true)]
    }

    #[test]
    fn conv_and_its_gradients_match_burns_on_every_kind() {
        // [x], [w], bias, stride, groups: 3x3 same, stride-2 downsample, pointwise, depthwise 3
        // and 5, one image (gemm threads), eight small ones (one gemm for the batch) and eight
        // larger ones (tiles in parallel, partial sums of the weight gradient).
        let cases = [
            ([2, 5, 9, 7], [6, 5, 3, 3], true, 1, 1),
            ([1, 4, 10, 9], [8, 4, 3, 3], false, 2, 1),
            ([3, 6, 5, 5], [4, 6, 1, 1], true, 1, 1),
            ([2, 6, 8, 9], [6, 1, 3, 3], true, 1, 6),
            ([1, 3, 7, 6], [3, 1, 5, 5], false, 1, 3),
            ([8, 3, 9, 9], [5, 3, 3, 3], true, 1, 1),
            ([8, 3, 9, 9], [5, 3, 3, 3], true, 2, 1),
            ([9, 4, 6, 6], [7, 4, 1, 1], false, 1, 1),
            ([8, 3, 34, 34], [4, 3, 3, 3], true, 1, 1),
            ([8, 5, 33, 35], [3, 5, 1, 1], true, 1, 1),
        ];
        for (shape, wshape, bias, stride, groups) in cases {
            let [(y, g), (yr, gr), (ym, gm)] = conv_both(shape, wshape, bias, stride, groups);
            // Terms per value: the forward's and dx's `cin/groups * k * k` (resp. `cout * k * k`)
            // products, dw's and db's `batch * pixels`; (terms + 2) u on each side.
            let pixels = y.len() / (shape[0] * wshape[0]);
            let terms = [
                wshape[1] * wshape[2] * wshape[3] + 1,
                wshape[0] * wshape[2] * wshape[3],
                shape[0] * pixels,
                shape[0] * pixels,
            ];
            let what = format!("{shape:?} {wshape:?} s{stride}");
            let check = |got: &[f32], want: &[f32], mag: &[f32], terms: usize, part: &str| {
                assert_eq!(got.len(), want.len(), "{what} {part}");
                let u = f32::EPSILON / 2.0;
                for (i, ((g, w), m)) in got.iter().zip(want).zip(mag).enumerate() {
                    let bound = 2.0 * (terms as f32 + 2.0) * u * m + 1e-30;
                    assert!(
                        (g - w).abs() <= bound,
                        "{what} {part}[{i}]: {g} vs {w} (bound {bound:e})"
                    );
                }
            };
            check(&y, &yr, &ym, terms[0], "y");
            for (i, part) in ["dx", "dw", "db"].iter().enumerate().take(g.len()) {
                assert!(!g[i].is_empty(), "{what}: no {part}");
                check(&g[i], &gr[i], &gm[i], terms[i + 1], part);
            }
        }
    }

    #[test]
    fn conv_without_autodiff_matches_burns_and_grouped_convs_fall_back() {
        let dev = burn::tensor::Device::flex();
        let x = Tensor::<4>::from_data(TensorData::new(ramp(2 * 4 * 6 * 5, 1), [2, 4, 6, 5]), &dev);
        let w = Tensor::<4>::from_data(TensorData::new(ramp(6 * 4 * 9, 2), [6, 4, 3, 3]), &dev);
        let b = Tensor::<1>::from_data(TensorData::new(ramp(6, 3), [6]), &dev);
        let opts = burn::tensor::ops::ConvOptions::new([1, 1], [1, 1], [1, 1], 1);
        let want = to_vec(burn::tensor::module::conv2d(
            x.clone(),
            w.clone(),
            Some(b.clone()),
            opts,
        ));
        let Ok(got) = conv2d(x.clone(), &w, Some(&b), 1, 1, 1) else {
            panic!("our conv refused a plain flex tensor");
        };
        let got = to_vec(got);
        let mag = 1e-5 * want.iter().fold(1.0f32, |m, v| m.max(v.abs()));
        assert_close(&got, &want, mag, 0.0, "conv2d");
        // Two groups of two channels: not dense, not depthwise.
        let wg = Tensor::<4>::from_data(TensorData::new(ramp(6 * 2 * 9, 2), [6, 2, 3, 3]), &dev);
        assert!(conv2d(x, &wg, None, 1, 1, 2).is_err());
    }
}
