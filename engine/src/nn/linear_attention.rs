//! The ReLU linear-attention kernel shared by DC-AE's LiteMLA and Sana's linear self-attention:
//! `out[:, n] = sum_m v_m (k_m . q_n) / (sum_m k_m . q_n + eps)`, always in f32 (eps 1e-15
//! underflows in f16) and always in the linear order `(V K^T) Q / (1^T K^T Q)`, never forming
//! the N x N matrix (the reference's quadratic order for small N is the same function).

use burn::tensor::activation::relu;
use burn::tensor::{DType, Tensor};

/// Normaliser epsilon of both references (`1e-15`).
pub const LINEAR_ATTN_EPS: f64 = 1e-15;

/// ReLU linear attention per head. `q`, `k`, `v` are `[B, G, d, N]` (G heads of width d over
/// N positions) before the ReLU kernel; the result is `[B, G, d, N]` in f32.
pub fn relu_linear_attention(q: Tensor<4>, k: Tensor<4>, v: Tensor<4>) -> Tensor<4> {
    let q = relu(q.cast(DType::F32));
    let k = relu(k.cast(DType::F32));
    let v = v.cast(DType::F32);
    let vk = v.matmul(k.clone().swap_dims(2, 3)); // [B, G, d, d]
    let num = vk.matmul(q.clone()); // [B, G, d, N]
    let ksum = k.sum_dim(3).swap_dims(2, 3); // [B, G, 1, d]
    let den = ksum.matmul(q); // [B, G, 1, N]
    num / (den + LINEAR_ATTN_EPS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, TensorData};

    /// Against the quadratic form `softmax`-free attention with scores `relu(k)^T relu(q)`,
    /// evaluated element by element on the host.
    #[test]
    fn equals_the_quadratic_form() {
        let (g, d, n) = (2, 3, 5);
        let val = |i: usize| ((i * 37 % 17) as f32 - 8.0) / 5.0;
        let mk = |o: usize| -> Vec<f32> { (0..g * d * n).map(|i| val(i + o)).collect() };
        let (q, k, v) = (mk(0), mk(11), mk(23));
        let dev = Device::flex();
        let t =
            |x: &Vec<f32>| Tensor::<4>::from_data(TensorData::new(x.clone(), [1, g, d, n]), &dev);
        let got = relu_linear_attention(t(&q), t(&k), t(&v))
            .into_data()
            .try_to_vec::<f32>()
            .unwrap();
        let at = |x: &Vec<f32>, h: usize, c: usize, p: usize| x[(h * d + c) * n + p];
        for h in 0..g {
            for c in 0..d {
                for p in 0..n {
                    let (mut num, mut den) = (0.0f64, 0.0f64);
                    for m in 0..n {
                        let s: f64 = (0..d)
                            .map(|j| {
                                f64::from(at(&k, h, j, m).max(0.0))
                                    * f64::from(at(&q, h, j, p).max(0.0))
                            })
                            .sum();
                        num += f64::from(at(&v, h, c, m)) * s;
                        den += s;
                    }
                    let want = num / (den + LINEAR_ATTN_EPS);
                    let g = f64::from(got[(h * d + c) * n + p]);
                    assert!(
                        (g - want).abs() <= 1e-5 * (1.0 + want.abs()),
                        "{g} vs {want}"
                    );
                }
            }
        }
    }
}
