//! Channel-wise kernels on contiguous NCHW f32 values: RMSNorm2d in two passes (the per-pixel
//! statistic, then one multiply-add per value) and GLUMBConv's `value * silu(gate)`.

use rayon::prelude::*;

use super::Level;
use super::simd::{self, CHUNK, per_level};

/// Pixels per rayon task of the statistic pass (each reads `C` rows of this many values).
const PIXELS: usize = 2048;

per_level! {
    fn add_squares(acc: &mut [f32], row: &[f32]) {
        for (a, x) in acc.iter_mut().zip(row) {
            *a += x * x;
        }
    }
}

per_level! {
    fn finish_inv(acc: &mut [f32], inv_c: f32, eps: f32) {
        for a in acc.iter_mut() {
            *a = 1.0 / (*a * inv_c + eps).sqrt();
        }
    }
}

per_level! {
    fn scale_shift(out: &mut [f32], x: &[f32], inv: &[f32], w: f32, b: f32) {
        for ((o, x), s) in out.iter_mut().zip(x).zip(inv) {
            *o = x * s * w + b;
        }
    }
}

per_level! {
    fn scale_shift_in_place(xs: &mut [f32], inv: &[f32], w: f32, b: f32) {
        for (x, s) in xs.iter_mut().zip(inv) {
            *x = *x * s * w + b;
        }
    }
}

/// `1 / sqrt(mean_c(x^2) + eps)` per pixel of `[B, C, HW]` values: `[B, HW]`.
pub fn rms_inv(level: Level, x: &[f32], b: usize, c: usize, hw: usize, eps: f32) -> Vec<f32> {
    let mut inv = vec![0.0f32; b * hw];
    if hw == 0 {
        return inv;
    }
    let inv_c = 1.0 / c.max(1) as f32;
    inv.par_chunks_mut(hw).enumerate().for_each(|(bi, plane)| {
        let xb = &x[bi * c * hw..(bi + 1) * c * hw];
        plane
            .par_chunks_mut(PIXELS)
            .enumerate()
            .for_each(|(j, acc)| {
                let p0 = j * PIXELS;
                for ci in 0..c {
                    let row = &xb[ci * hw + p0..ci * hw + p0 + acc.len()];
                    add_squares(level, acc, row);
                }
                finish_inv(level, acc, inv_c, eps);
            });
    });
    inv
}

/// Rows (one channel of one image) per rayon task of the apply pass.
fn rows_per_task(hw: usize) -> usize {
    (CHUNK / hw.max(1)).max(1)
}

/// `x * inv[b, p] * w[c] + bias[c]` into a new buffer.
pub fn rms_apply(x: &[f32], inv: &[f32], w: &[f32], bias: &[f32], c: usize, hw: usize) -> Vec<f32> {
    let level = Level::detected();
    let mut out = vec![0.0f32; x.len()];
    if hw == 0 {
        return out;
    }
    let rows = rows_per_task(hw);
    out.par_chunks_mut(rows * hw)
        .zip(x.par_chunks(rows * hw))
        .enumerate()
        .for_each(|(t, (o, xs))| {
            for (r, (orow, xrow)) in o.chunks_mut(hw).zip(xs.chunks(hw)).enumerate() {
                let row = t * rows + r;
                let (bi, ci) = (row / c, row % c);
                let inv = &inv[bi * hw..(bi + 1) * hw];
                scale_shift(level, orow, xrow, inv, w[ci], bias[ci]);
            }
        });
    out
}

/// [`rms_apply`] over `xs` itself.
pub fn rms_apply_in_place(
    xs: &mut [f32],
    inv: &[f32],
    w: &[f32],
    bias: &[f32],
    c: usize,
    hw: usize,
) {
    let level = Level::detected();
    if hw == 0 {
        return;
    }
    let rows = rows_per_task(hw);
    xs.par_chunks_mut(rows * hw)
        .enumerate()
        .for_each(|(t, chunk)| {
            for (r, xrow) in chunk.chunks_mut(hw).enumerate() {
                let row = t * rows + r;
                let (bi, ci) = (row / c, row % c);
                let inv = &inv[bi * hw..(bi + 1) * hw];
                scale_shift_in_place(level, xrow, inv, w[ci], bias[ci]);
            }
        });
}

/// `[B, 2C, HW] -> [B, C, HW]`: the first `C` channels times SiLU of the last `C`.
pub fn glu_silu(level: Level, h: &[f32], b: usize, c: usize, hw: usize) -> Vec<f32> {
    let mut out = vec![0.0f32; b * c * hw];
    if hw == 0 || c == 0 {
        return out;
    }
    let rows = rows_per_task(hw);
    out.par_chunks_mut(rows * hw)
        .enumerate()
        .for_each(|(t, chunk)| {
            for (r, orow) in chunk.chunks_mut(hw).enumerate() {
                let row = t * rows + r;
                let (bi, ci) = (row / c, row % c);
                let v0 = (bi * 2 * c + ci) * hw;
                let g0 = (bi * 2 * c + c + ci) * hw;
                simd::glu_slice(level, &h[v0..v0 + hw], &h[g0..g0 + hw], orow);
            }
        });
    out
}
