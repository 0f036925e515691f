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

mod norm;
mod simd;

use std::sync::OnceLock;

use burn::tensor::{Bytes, DType, Tensor, activation};
use burn_dispatch::{
    BackendTensor, DispatchAutodiffContext, DispatchDevice, DispatchTensor, DispatchTensorKind,
};
use burn_flex::{FlexTensor, Layout};

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
    match flex_f32(x) {
        Ok(mut t) => {
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
    fn strided_and_autodiff_tensors_take_burns_path() {
        let v = ramp(24, 3);
        let t = flex_tensor(v.clone(), [2, 3, 4]).swap_dims(0, 2);
        let want = to_vec(burn_unary(t.clone(), Unary::Silu));
        assert_eq!(to_vec(silu(t)), want);
        let dev = burn::tensor::Device::flex().autodiff();
        let x = Tensor::<1>::from_data(TensorData::new(v.clone(), [24]), &dev).require_grad();
        let grads = silu(x.clone()).sum().backward();
        let g = x.grad(&grads).map(to_vec).unwrap_or_default();
        assert_eq!(g.len(), 24, "autodiff tensor lost its gradient");
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
}
