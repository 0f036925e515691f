//! Rotary position embeddings, rotate-half convention (transformers' Llama / Gemma): tables built
//! on the host in f32 the way transformers builds them (`inv_freq = 1 / theta^(2i/d)`, `freqs =
//! pos * inv_freq`, `emb = cat(freqs, freqs)`).

use burn::tensor::{DType, Device, Tensor, TensorData};

/// `(cos, sin)` tables `[T, d]` for positions `0..t`.
pub fn rope_tables(t: usize, d: usize, theta: f64, device: &Device) -> (Tensor<2>, Tensor<2>) {
    let half = d / 2;
    let inv: Vec<f32> = (0..half)
        .map(|i| 1.0 / (theta as f32).powf((2 * i) as f32 / d as f32))
        .collect();
    let (mut cos, mut sin) = (Vec::with_capacity(t * d), Vec::with_capacity(t * d));
    for p in 0..t {
        // `cat(freqs, freqs)`: the same half twice.
        for _ in 0..2 {
            for &f in &inv {
                let a = p as f32 * f;
                cos.push(a.cos());
                sin.push(a.sin());
            }
        }
    }
    (
        Tensor::from_data(TensorData::new(cos, [t, d]), device),
        Tensor::from_data(TensorData::new(sin, [t, d]), device),
    )
}

/// `x * cos + rotate_half(x) * sin`, `rotate_half(x) = cat(-x2, x1)`, in f32.
///
/// # Shapes
/// `x: [B, H, T, d]`, `cos, sin: [T, d]` -> `[B, H, T, d]`
pub fn apply_rope(x: Tensor<4>, cos: &Tensor<2>, sin: &Tensor<2>) -> Tensor<4> {
    let dtype = x.dtype();
    let x = x.cast(DType::F32);
    let [_, _, t, d] = x.dims();
    let half = d / 2;
    let x1 = x.clone().narrow(3, 0, half);
    let x2 = x.clone().narrow(3, half, half);
    let rot = Tensor::cat(vec![x2.neg(), x1], 3);
    let c = cos.clone().reshape([1, 1, t, d]);
    let s = sin.clone().reshape([1, 1, t, d]);
    (x * c + rot * s).cast(dtype)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Position 0 is the identity; a rotation keeps each (i, i + d/2) pair's norm.
    #[test]
    fn rotation_keeps_pair_norms() {
        let dev = Device::flex();
        let (cos, sin) = rope_tables(3, 4, 10000.0, &dev);
        let v: Vec<f32> = vec![1.0, 2.0, 3.0, 4.0];
        let x = Tensor::<4>::from_data(
            TensorData::new([v.clone(), v.clone(), v].concat(), [1, 1, 3, 4]),
            &dev,
        );
        let y = apply_rope(x, &cos, &sin)
            .into_data()
            .try_to_vec::<f32>()
            .unwrap();
        assert_eq!(&y[..4], &[1.0, 2.0, 3.0, 4.0]);
        for p in 1..3 {
            let r = &y[p * 4..p * 4 + 4];
            for (a, b) in [(0, 2), (1, 3)] {
                let n0 = [1.0f32, 2.0, 3.0, 4.0];
                let want = (n0[a] * n0[a] + n0[b] * n0[b]).sqrt();
                assert!(((r[a] * r[a] + r[b] * r[b]).sqrt() - want).abs() < 1e-5);
            }
        }
        // Pair 0 at position 1 turns by 1 rad.
        assert!((y[4] - (1f32.cos() - 3.0 * 1f32.sin())).abs() < 1e-6);
    }
}
