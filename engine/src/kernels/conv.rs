//! 2-D convolutions on contiguous NCHW f32 values, for inference on the CPU.
//!
//! Dense convs (one group) are an im2col + gemm per tile of output rows, written straight into
//! the NCHW output: the output rows start as the bias and the gemm adds to them, so there is no
//! channels-last copy of the input, no separate result buffer, no scatter and no bias pass (what
//! burn-flex's general conv spends a third of its time on, on the calling thread). Tiles run on
//! rayon's pool, each with its own im2col buffer; a layer with too few tiles to share (small
//! latents) gives its gemm the threads instead. Depthwise convs start every output plane from
//! the bias and add one shifted row per kernel tap.

use std::mem::MaybeUninit;

use rayon::prelude::*;

use super::Level;
use super::simd::per_level;

/// The shape of one convolution: `[b, cin, h, w] * [cout, cin / groups, k, k] -> [b, cout, oh,
/// ow]` with the given stride and zero padding on every side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvShape {
    pub b: usize,
    pub cin: usize,
    pub h: usize,
    pub w: usize,
    pub cout: usize,
    pub k: usize,
    pub stride: usize,
    pub pad: usize,
}

impl ConvShape {
    /// Output height and width (PyTorch's formula; at least one kernel must fit).
    pub fn out_hw(&self) -> Option<(usize, usize)> {
        let span = |n: usize| {
            (n + 2 * self.pad)
                .checked_sub(self.k)
                .map(|r| r / self.stride + 1)
        };
        if self.stride == 0 || self.k == 0 {
            return None;
        }
        Some((span(self.h)?, span(self.w)?))
    }
}

/// im2col values per tile (4 MiB): large enough for the gemm to run at speed, small enough to
/// stay in the last-level cache of one core's share.
const COL_VALUES: usize = 1 << 20;
/// Output pixels per tile of a 1x1 conv (no im2col: the tile only splits the work).
const PIXELS_1X1: usize = 4096;

/// A raw pointer shared by the tasks that write disjoint parts of one buffer.
#[derive(Clone, Copy)]
struct Out(*mut f32);
// SAFETY: every task writes a disjoint set of elements (one image's rows of one tile).
unsafe impl Send for Out {}
unsafe impl Sync for Out {}

impl Out {
    /// The pointer `i` values on (a method, so closures capture the `Send` wrapper).
    fn at(self, i: usize) -> *mut f32 {
        self.0.wrapping_add(i)
    }
}

/// Output planes up to this many pixels (the small, deep stages of a training batch) are
/// computed for the whole batch in one gemm: per-image gemms that small spend more time packing
/// the weight and waking threads than multiplying.
const SMALL_PLANE: usize = 1024;

/// Whether [`dense`] and [`weight_grad`] take the whole batch in one gemm.
fn batched(s: &ConvShape, plane: usize) -> bool {
    s.b > 1 && plane <= SMALL_PLANE && s.cin * s.k * s.k * s.b * plane <= 4 * COL_VALUES
}

/// The im2col matrix of the whole batch, `[cin * k * k, b * plane]`: image `i`'s columns are
/// `[i * plane, (i + 1) * plane)`.
fn batch_cols(x: &[f32], s: &ConvShape, oh: usize, ow: usize) -> Vec<f32> {
    let (plane, kk) = (oh * ow, s.cin * s.k * s.k);
    let ld = s.b * plane;
    let mut col = vec![0.0f32; kk * ld];
    for bi in 0..s.b {
        let xb = &x[bi * s.cin * s.h * s.w..(bi + 1) * s.cin * s.h * s.w];
        im2col_ld(xb, &mut col[bi * plane..], ld, s, ow, 0, oh);
    }
    col
}

/// `[p, q, plane] -> [q, p, plane]`: between the batch-major layout of tensors (`[b, c, ..]`)
/// and the channel-major one of a gemm over the whole batch (`[c, b * plane]`).
fn swap_outer(v: &[f32], p: usize, q: usize, plane: usize) -> Vec<f32> {
    let mut out = vec![0.0f32; v.len()];
    for i in 0..p {
        for j in 0..q {
            let src = &v[(i * q + j) * plane..(i * q + j + 1) * plane];
            out[(j * p + i) * plane..(j * p + i + 1) * plane].copy_from_slice(src);
        }
    }
    out
}

/// [`dense`] for a batch of small planes: one gemm over `b * plane` columns.
fn dense_batched(x: &[f32], weight: &[f32], bias: Option<&[f32]>, s: &ConvShape) -> Vec<f32> {
    let Some((oh, ow)) = s.out_hw() else {
        return Vec::new();
    };
    let (plane, kk) = (oh * ow, s.cin * s.k * s.k);
    let n = s.b * plane;
    let col = batch_cols(x, s, oh, ow);
    let mut y = vec![0.0f32; s.cout * n];
    if let Some(bias) = bias {
        for (row, &bv) in y.chunks_exact_mut(n).zip(bias) {
            row.fill(bv);
        }
    }
    // SAFETY: `y` `[cout, n]`, weight `[cout, kk]`, `col` `[kk, n]`, all row-major.
    unsafe {
        gemm::gemm(
            s.cout,
            n,
            kk,
            y.as_mut_ptr(),
            1,
            n as isize,
            bias.is_some(),
            weight.as_ptr(),
            1,
            kk as isize,
            col.as_ptr(),
            1,
            n as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::Rayon(rayon::current_num_threads()),
        );
    }
    swap_outer(&y, s.cout, s.b, plane)
}

/// Dense convolution (one group): `x` is `[b, cin, h, w]`, `weight` `[cout, cin, k, k]`, `bias`
/// `[cout]`; returns `[b, cout, oh, ow]`. The caller has checked the lengths against `s`.
pub fn dense(x: &[f32], weight: &[f32], bias: Option<&[f32]>, s: &ConvShape) -> Vec<f32> {
    let Some((oh, ow)) = s.out_hw() else {
        return Vec::new();
    };
    let plane = oh * ow;
    let kk = s.cin * s.k * s.k;
    let total = s.b * s.cout * plane;
    let mut out: Vec<f32> = Vec::with_capacity(total);
    if total == 0 {
        return out;
    }
    if batched(s, plane) {
        return dense_batched(x, weight, bias, s);
    }
    let pointwise = s.k == 1 && s.stride == 1 && s.pad == 0;
    // Tiles of whole output rows (pixels for a 1x1 conv, whose input plane is already the
    // gemm's right-hand side).
    let (tile, tiles) = if pointwise {
        let t = PIXELS_1X1.min(plane);
        (t, plane.div_ceil(t))
    } else {
        let rows = (COL_VALUES / (kk * ow).max(1)).clamp(1, oh);
        (rows, oh.div_ceil(rows))
    };
    let jobs = s.b * tiles;
    let threads = rayon::current_num_threads();
    let dst = Out(out.spare_capacity_mut().as_mut_ptr().cast::<f32>());
    let run = |col: &mut Vec<f32>, job: usize, par: gemm::Parallelism| {
        let (bi, t) = (job / tiles, job % tiles);
        let xb = &x[bi * s.cin * s.h * s.w..(bi + 1) * s.cin * s.h * s.w];
        // This tile's output pixels [p0, p0 + n) of every output plane.
        let (p0, n) = if pointwise {
            (t * tile, tile.min(plane - t * tile))
        } else {
            let r0 = t * tile;
            (r0 * ow, tile.min(oh - r0) * ow)
        };
        // SAFETY: the image's `cout` output rows [p0, p0 + n) belong to this job alone, and
        // lie inside the `total` values reserved.
        let d = dst.at(bi * s.cout * plane + p0);
        if let Some(bias) = bias {
            for (co, &bv) in bias.iter().enumerate() {
                // SAFETY: as above; written before the gemm reads it.
                unsafe { std::slice::from_raw_parts_mut(d.add(co * plane), n) }.fill(bv);
            }
        }
        let (rhs, rhs_rs) = if pointwise {
            (xb[p0..].as_ptr(), (s.h * s.w) as isize)
        } else {
            col.resize(kk * n, 0.0);
            im2col(xb, col, s, ow, p0 / ow, n / ow);
            (col.as_ptr(), n as isize)
        };
        // SAFETY: the pointers and strides describe the buffers above: dst `[cout, n]` with
        // row stride `plane`, weight `[cout, kk]` row-major, rhs `[kk, n]` with row stride
        // `rhs_rs`.
        unsafe {
            gemm::gemm(
                s.cout,
                n,
                kk,
                d,
                1,
                plane as isize,
                bias.is_some(),
                weight.as_ptr(),
                1,
                kk as isize,
                rhs,
                1,
                rhs_rs,
                1.0,
                1.0,
                false,
                false,
                false,
                par,
            );
        }
    };
    // Enough tiles to balance the threads (any leftover is under a quarter of a round): tiles
    // in parallel; otherwise one tile at a time, each gemm over all threads.
    if jobs >= 4 * threads || threads == 1 {
        (0..jobs)
            .into_par_iter()
            .for_each_init(Vec::new, |col, job| run(col, job, gemm::Parallelism::None));
    } else {
        let mut col = Vec::new();
        for job in 0..jobs {
            run(&mut col, job, gemm::Parallelism::Rayon(threads));
        }
    }
    // SAFETY: the jobs together wrote every one of the `total` values.
    unsafe { out.set_len(total) };
    out
}

/// The im2col rows of output rows `[r0, r0 + rows)` of one image: `col` is
/// `[cin * k * k, rows * ow]`, row `(ci, kh, kw)` holding the input value under that tap for
/// every output pixel (zero in the padding).
fn im2col(x: &[f32], col: &mut [f32], s: &ConvShape, ow: usize, r0: usize, rows: usize) {
    im2col_ld(x, col, rows * ow, s, ow, r0, rows);
}

/// [`im2col`] into rows `ld` values apart (a block of columns of a wider matrix).
fn im2col_ld(
    x: &[f32],
    col: &mut [f32],
    ld: usize,
    s: &ConvShape,
    ow: usize,
    r0: usize,
    rows: usize,
) {
    let n = rows * ow;
    let mut row = 0;
    for ci in 0..s.cin {
        let xp = &x[ci * s.h * s.w..(ci + 1) * s.h * s.w];
        for kh in 0..s.k {
            for kw in 0..s.k {
                let dst = &mut col[row * ld..row * ld + n];
                row += 1;
                let (lo, hi) = valid(kw, s.pad, s.stride, s.w, ow);
                for (t, drow) in dst.chunks_exact_mut(ow).enumerate() {
                    let ih = ((r0 + t) * s.stride + kh).checked_sub(s.pad);
                    let Some(ih) = ih.filter(|&i| i < s.h) else {
                        drow.fill(0.0);
                        continue;
                    };
                    let src = &xp[ih * s.w..(ih + 1) * s.w];
                    drow[..lo].fill(0.0);
                    drow[hi..].fill(0.0);
                    if s.stride == 1 {
                        // `lo + kw >= pad` by the choice of `lo`.
                        let a = lo + kw - s.pad;
                        drow[lo..hi].copy_from_slice(&src[a..a + hi - lo]);
                    } else {
                        for (o, d) in drow[lo..hi].iter_mut().enumerate() {
                            *d = src[(lo + o) * s.stride + kw - s.pad];
                        }
                    }
                }
            }
        }
    }
}

/// The output columns `[lo, hi)` whose input column `o * stride + kw - pad` lies in `[0, w)`.
fn valid(kw: usize, pad: usize, stride: usize, w: usize, ow: usize) -> (usize, usize) {
    let lo = pad.saturating_sub(kw).div_ceil(stride);
    let hi = (w + pad).saturating_sub(kw).div_ceil(stride).min(ow);
    (lo.min(hi), hi)
}

per_level! {
    /// `acc[i] += sum_j a[16 j + i] * b[16 j + i]` (16 lanes of f32 partial sums; the tail
    /// goes to lane 0).
    fn lane_dots(a: &[f32], b: &[f32], acc: &mut [f32]) {
        let (ac, bc) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
        let (ar, br) = (ac.remainder(), bc.remainder());
        for (x, y) in ac.zip(bc) {
            for i in 0..LANES {
                acc[i] += x[i] * y[i];
            }
        }
        for (x, y) in ar.iter().zip(br) {
            acc[0] += x * y;
        }
    }
}

per_level! {
    /// `acc[i] += sum_j a[16 j + i]`, as [`lane_dots`].
    fn lane_sums(a: &[f32], acc: &mut [f32]) {
        let ac = a.chunks_exact(LANES);
        let ar = ac.remainder();
        for x in ac {
            for i in 0..LANES {
                acc[i] += x[i];
            }
        }
        for x in ar {
            acc[0] += x;
        }
    }
}

/// Partial sums per lane: vectorised f32 sums of `1/16` of a row each, added in f64.
const LANES: usize = 16;

/// `sum a * b` over one row (f32 lanes, f64 total).
fn dot(level: Level, a: &[f32], b: &[f32]) -> f64 {
    let mut acc = [0.0f32; LANES];
    lane_dots(level, a, b, &mut acc);
    acc.iter().map(|v| f64::from(*v)).sum()
}

/// `sum a` over one row (f32 lanes, f64 total).
fn sum(level: Level, a: &[f32]) -> f64 {
    let mut acc = [0.0f32; LANES];
    lane_sums(level, a, &mut acc);
    acc.iter().map(|v| f64::from(*v)).sum()
}

per_level! {
    fn axpy(out: &mut [f32], x: &[f32], a: f32) {
        for (o, x) in out.iter_mut().zip(x) {
            *o += a * *x;
        }
    }
}

/// Depthwise convolution, stride 1: `x` `[b, c, h, w]`, `weight` `[c, 1, k, k]`, `bias` `[c]`;
/// returns `[b, c, oh, ow]`. Each plane starts as its bias, then adds `w[kh, kw] * x` shifted,
/// row by row, taps in row-major order.
pub fn depthwise_conv(
    level: Level,
    x: &[f32],
    weight: &[f32],
    bias: Option<&[f32]>,
    s: &ConvShape,
) -> Vec<f32> {
    let Some((oh, ow)) = s.out_hw() else {
        return Vec::new();
    };
    let (plane, inp, kk) = (oh * ow, s.h * s.w, s.k * s.k);
    let total = s.b * s.cout * plane;
    let mut out: Vec<f32> = Vec::with_capacity(total);
    if total == 0 {
        return out;
    }
    out.spare_capacity_mut()[..total]
        .par_chunks_mut(plane)
        .enumerate()
        .for_each(|(bc, op)| {
            let c = bc % s.cout;
            let b0 = bias.map_or(0.0, |b| b[c]);
            for v in op.iter_mut() {
                v.write(b0);
            }
            // SAFETY: every value was written just above; MaybeUninit<f32> has f32's layout.
            let op = unsafe { &mut *(op as *mut [MaybeUninit<f32>] as *mut [f32]) };
            let xp = &x[bc * inp..(bc + 1) * inp];
            let wc = &weight[c * kk..(c + 1) * kk];
            for (r, orow) in op.chunks_exact_mut(ow).enumerate() {
                for kh in 0..s.k {
                    let Some(ih) = (r + kh).checked_sub(s.pad).filter(|&i| i < s.h) else {
                        continue;
                    };
                    let src = &xp[ih * s.w..(ih + 1) * s.w];
                    for kw in 0..s.k {
                        let (lo, hi) = valid(kw, s.pad, 1, s.w, ow);
                        if lo < hi {
                            let a = lo + kw - s.pad;
                            axpy(
                                level,
                                &mut orow[lo..hi],
                                &src[a..a + hi - lo],
                                wc[kh * s.k + kw],
                            );
                        }
                    }
                }
            }
        });
    // SAFETY: every plane was initialised above.
    unsafe { out.set_len(total) };
    out
}

// --- gradients (training) ---------------------------------------------------------------

/// `[cin, cout, k, k]`, each kernel rotated by 180°: the weight whose stride-1 convolution of
/// the output gradient is the input gradient.
fn flipped_transpose(weight: &[f32], cin: usize, cout: usize, k: usize) -> Vec<f32> {
    let kk = k * k;
    let mut out = vec![0.0f32; weight.len()];
    for co in 0..cout {
        for ci in 0..cin {
            let src = &weight[(co * cin + ci) * kk..(co * cin + ci + 1) * kk];
            let dst = &mut out[(ci * cout + co) * kk..(ci * cout + co + 1) * kk];
            for (d, s) in dst.iter_mut().zip(src.iter().rev()) {
                *d = *s;
            }
        }
    }
    out
}

/// The gradient of a dense or depthwise convolution with respect to its input, given the
/// output gradient `dy` `[b, cout, oh, ow]`: `[b, cin, h, w]`.
pub fn input_grad(
    level: Level,
    weight: &[f32],
    dy: &[f32],
    s: &ConvShape,
    depthwise: bool,
) -> Vec<f32> {
    let Some((oh, ow)) = s.out_hw() else {
        return Vec::new();
    };
    if s.stride == 1 && s.pad < s.k {
        // A "full" stride-1 convolution of `dy` with the rotated kernels gives back `h x w`
        // (`oh + 2 (k - 1 - pad) - k + 1 = h`).
        let t = ConvShape {
            b: s.b,
            cin: s.cout,
            h: oh,
            w: ow,
            cout: s.cin,
            k: s.k,
            stride: 1,
            pad: s.k - 1 - s.pad,
        };
        if depthwise {
            let flipped: Vec<f32> = weight
                .chunks_exact(s.k * s.k)
                .flat_map(|c| c.iter().rev().copied())
                .collect();
            return depthwise_conv(level, dy, &flipped, None, &t);
        }
        return dense(dy, &flipped_transpose(weight, s.cin, s.cout, s.k), None, &t);
    }
    // Strided (or over-padded) convs: the columns' gradient `W^T dy` scattered back (col2im),
    // one image per task since neighbouring tiles of an image overlap in the input.
    let (plane, inp, kk) = (oh * ow, s.h * s.w, s.cin * s.k * s.k);
    // (Depthwise convs run at stride 1 only, so they never get here.)
    let mut dx = vec![0.0f32; s.b * s.cin * inp];
    let rows = (COL_VALUES / (kk * ow).max(1)).clamp(1, oh);
    let threads = rayon::current_num_threads();
    let image = |bi: usize, dxb: &mut [f32], par: gemm::Parallelism| {
        let mut col = Vec::new();
        for r0 in (0..oh).step_by(rows) {
            let n = rows.min(oh - r0) * ow;
            col.resize(kk * n, 0.0);
            // SAFETY: `col` is `[kk, n]`, the weight `[cout, kk]` read transposed, `dy`'s
            // rows of this image `[cout, n]` with stride `plane`.
            unsafe {
                gemm::gemm(
                    kk,
                    n,
                    s.cout,
                    col.as_mut_ptr(),
                    1,
                    n as isize,
                    false,
                    weight.as_ptr(),
                    kk as isize,
                    1,
                    dy[bi * s.cout * plane + r0 * ow..].as_ptr(),
                    1,
                    plane as isize,
                    0.0,
                    1.0,
                    false,
                    false,
                    false,
                    par,
                );
            }
            col2im(dxb, &col, s, ow, r0, n / ow);
        }
    };
    if s.b >= threads {
        dx.par_chunks_mut(s.cin * inp)
            .enumerate()
            .for_each(|(bi, dxb)| image(bi, dxb, gemm::Parallelism::None));
    } else {
        for (bi, dxb) in dx.chunks_mut(s.cin * inp).enumerate() {
            image(bi, dxb, gemm::Parallelism::Rayon(threads));
        }
    }
    dx
}

/// Adds the im2col rows `col` (`[cin * k * k, rows * ow]`, as [`im2col`] lays them out) back
/// onto the input positions they were read from.
fn col2im(dx: &mut [f32], col: &[f32], s: &ConvShape, ow: usize, r0: usize, rows: usize) {
    let n = rows * ow;
    let mut row = 0;
    for ci in 0..s.cin {
        let xp = &mut dx[ci * s.h * s.w..(ci + 1) * s.h * s.w];
        for kh in 0..s.k {
            for kw in 0..s.k {
                let src = &col[row * n..(row + 1) * n];
                row += 1;
                let (lo, hi) = valid(kw, s.pad, s.stride, s.w, ow);
                for (t, srow) in src.chunks_exact(ow).enumerate() {
                    let ih = ((r0 + t) * s.stride + kh).checked_sub(s.pad);
                    let Some(ih) = ih.filter(|&i| i < s.h) else {
                        continue;
                    };
                    let dst = &mut xp[ih * s.w..(ih + 1) * s.w];
                    for (o, v) in srow[lo..hi].iter().enumerate() {
                        dst[(lo + o) * s.stride + kw - s.pad] += v;
                    }
                }
            }
        }
    }
}

/// The gradient with respect to the weight, `[cout, cin / groups, k, k]`, summed over the
/// batch: `dy x col^T` per tile (dense), or one dot product per tap (depthwise).
pub fn weight_grad(
    level: Level,
    x: &[f32],
    dy: &[f32],
    s: &ConvShape,
    depthwise: bool,
) -> Vec<f32> {
    let Some((oh, ow)) = s.out_hw() else {
        return Vec::new();
    };
    let plane = oh * ow;
    if depthwise {
        let kk = s.k * s.k;
        let mut dw = vec![0.0f32; s.cout * kk];
        dw.par_chunks_mut(kk).enumerate().for_each(|(c, dwc)| {
            let one = ConvShape {
                b: 1,
                cin: 1,
                cout: 1,
                ..*s
            };
            let mut col = vec![0.0f32; kk * plane];
            let mut acc = vec![0.0f64; kk];
            for bi in 0..s.b {
                let bc = bi * s.cout + c;
                im2col(
                    &x[bc * s.h * s.w..(bc + 1) * s.h * s.w],
                    &mut col,
                    &one,
                    ow,
                    0,
                    oh,
                );
                let dyp = &dy[bc * plane..(bc + 1) * plane];
                for (a, row) in acc.iter_mut().zip(col.chunks_exact(plane)) {
                    *a += dot(level, row, dyp);
                }
            }
            for (d, a) in dwc.iter_mut().zip(&acc) {
                *d = *a as f32;
            }
        });
        return dw;
    }
    let kk = s.cin * s.k * s.k;
    if batched(s, plane) {
        let n = s.b * plane;
        let col = batch_cols(x, s, oh, ow);
        let dyc = swap_outer(dy, s.b, s.cout, plane);
        let mut dwt = vec![0.0f32; s.cout * kk];
        // SAFETY: `dwt` `[cout, kk]` column-major, `dyc` `[cout, n]`, `col` read transposed
        // `[n, kk]`.
        unsafe {
            gemm::gemm(
                s.cout,
                kk,
                n,
                dwt.as_mut_ptr(),
                s.cout as isize,
                1,
                false,
                dyc.as_ptr(),
                1,
                n as isize,
                col.as_ptr(),
                n as isize,
                1,
                0.0,
                1.0,
                false,
                false,
                false,
                gemm::Parallelism::Rayon(rayon::current_num_threads()),
            );
        }
        return transpose(&dwt, kk, s.cout);
    }
    let pointwise = s.k == 1 && s.stride == 1 && s.pad == 0;
    let rows = (COL_VALUES / (kk * ow).max(1)).clamp(1, oh);
    let tiles = oh.div_ceil(rows);
    let jobs = s.b * tiles;
    let threads = rayon::current_num_threads();
    // `acc += dy_tile x col_tile^T` for one tile; `fresh` when `acc` holds nothing yet.
    let tile = |col: &mut Vec<f32>, acc: &mut [f32], fresh: bool, job: usize, par| {
        let (bi, r0) = (job / tiles, (job % tiles) * rows);
        let n = rows.min(oh - r0) * ow;
        let xb = &x[bi * s.cin * s.h * s.w..(bi + 1) * s.cin * s.h * s.w];
        let (rhs, rhs_cs) = if pointwise {
            (xb[r0 * ow..].as_ptr(), (s.h * s.w) as isize)
        } else {
            col.resize(kk * n, 0.0);
            im2col(xb, col, s, ow, r0, n / ow);
            (col.as_ptr(), n as isize)
        };
        // SAFETY: `acc` is `[cout, kk]` column-major; `dy`'s tile `[cout, n]` with row stride
        // `plane`; the columns read transposed, `[n, kk]`.
        unsafe {
            gemm::gemm(
                s.cout,
                kk,
                n,
                acc.as_mut_ptr(),
                s.cout as isize,
                1,
                !fresh,
                dy[bi * s.cout * plane + r0 * ow..].as_ptr(),
                1,
                plane as isize,
                rhs,
                rhs_cs,
                1,
                1.0,
                1.0,
                false,
                false,
                false,
                par,
            );
        }
    };
    // The gemm writes the sum column-major (`[kk, cout]` in memory): its packed operand is
    // then the small output gradient, not the wide column matrix.
    let acc = if jobs >= 4 * threads {
        (0..jobs)
            .into_par_iter()
            .fold(
                || (Vec::new(), Vec::new()),
                |(mut col, mut acc): (Vec<f32>, Vec<f32>), job| {
                    let fresh = acc.is_empty();
                    acc.resize(s.cout * kk, 0.0);
                    tile(&mut col, &mut acc, fresh, job, gemm::Parallelism::None);
                    (col, acc)
                },
            )
            .map(|(_, acc)| acc)
            .reduce(Vec::new, |mut a, b| {
                if a.is_empty() {
                    return b;
                }
                a.iter_mut().zip(&b).for_each(|(a, b)| *a += b);
                a
            })
    } else {
        let (mut col, mut acc) = (Vec::new(), vec![0.0f32; s.cout * kk]);
        for job in 0..jobs {
            tile(
                &mut col,
                &mut acc,
                job == 0,
                job,
                gemm::Parallelism::Rayon(threads),
            );
        }
        acc
    };
    transpose(&acc, kk, s.cout)
}

/// `[rows, cols] -> [cols, rows]`.
fn transpose(v: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut out = vec![0.0f32; v.len()];
    for (r, row) in v.chunks_exact(cols).enumerate() {
        for (c, x) in row.iter().enumerate() {
            out[c * rows + r] = *x;
        }
    }
    out
}

/// The gradient with respect to the bias: `dy` summed over the batch and the pixels, `[cout]`.
pub fn bias_grad(level: Level, dy: &[f32], b: usize, cout: usize, plane: usize) -> Vec<f32> {
    (0..cout)
        .into_par_iter()
        .map(|c| {
            (0..b)
                .map(|bi| {
                    sum(
                        level,
                        &dy[(bi * cout + c) * plane..(bi * cout + c + 1) * plane],
                    )
                })
                .sum::<f64>() as f32
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Direct definition, summed in f64: the reference, and the rounding bound `sum |w x|`.
    fn reference(
        x: &[f32],
        w: &[f32],
        bias: Option<&[f32]>,
        s: &ConvShape,
        depthwise: bool,
    ) -> (Vec<f64>, Vec<f64>) {
        let (oh, ow) = s.out_hw().unwrap();
        let cpg = if depthwise { 1 } else { s.cin };
        let mut out = vec![0.0; s.b * s.cout * oh * ow];
        let mut mag = out.clone();
        for b in 0..s.b {
            for co in 0..s.cout {
                for y in 0..oh {
                    for xo in 0..ow {
                        let mut acc = bias.map_or(0.0, |b| b[co] as f64);
                        let mut m = acc.abs();
                        for cj in 0..cpg {
                            let ci = if depthwise { co } else { cj };
                            for kh in 0..s.k {
                                for kw in 0..s.k {
                                    let iy = (y * s.stride + kh) as isize - s.pad as isize;
                                    let ix = (xo * s.stride + kw) as isize - s.pad as isize;
                                    if iy < 0 || ix < 0 || iy >= s.h as isize || ix >= s.w as isize
                                    {
                                        continue;
                                    }
                                    let xv = x
                                        [((b * s.cin + ci) * s.h + iy as usize) * s.w + ix as usize]
                                        as f64;
                                    let wv = w[((co * cpg + cj) * s.k + kh) * s.k + kw] as f64;
                                    acc += xv * wv;
                                    m += (xv * wv).abs();
                                }
                            }
                        }
                        let i = ((b * s.cout + co) * oh + y) * ow + xo;
                        out[i] = acc;
                        mag[i] = m;
                    }
                }
            }
        }
        (out, mag)
    }

    fn values(n: usize, seed: u64) -> Vec<f32> {
        let mut st = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
        (0..n)
            .map(|_| {
                st ^= st << 13;
                st ^= st >> 7;
                st ^= st << 17;
                (st >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
            })
            .collect()
    }

    /// `|got - want| <= (terms + 2) * 2^-24 * sum |w x|`: the worst case of a float sum of that
    /// many products in any order (and with or without fused multiply-adds), whatever kernel
    /// the CPU picks.
    fn check(got: &[f32], want: &[f64], mag: &[f64], terms: usize, what: &str) {
        assert_eq!(got.len(), want.len(), "{what}: length");
        let u = f64::from(f32::EPSILON) / 2.0;
        for (i, ((g, w), m)) in got.iter().zip(want).zip(mag).enumerate() {
            let bound = (terms as f64 + 2.0) * u * m + f64::from(f32::MIN_POSITIVE);
            assert!(
                (f64::from(*g) - w).abs() <= bound,
                "{what}[{i}]: {g} vs {w} (bound {bound:e})"
            );
        }
    }

    #[test]
    fn dense_matches_the_definition_on_every_shape_kind() {
        // 1x1 (pointwise and strided), 3x3 same, stride-2 downsample, 5x5, odd sizes, one
        // input channel, several images, more than one tile, a kernel larger than the image.
        let shapes = [
            (1, 8, 5, 7, 6, 1, 1, 0),
            (2, 8, 9, 9, 4, 1, 2, 0),
            (2, 3, 17, 13, 5, 3, 1, 1),
            (1, 1, 6, 6, 3, 3, 1, 1),
            (1, 6, 16, 15, 7, 3, 2, 1),
            (2, 4, 11, 12, 3, 5, 1, 2),
            (1, 2, 3, 3, 2, 5, 1, 2),
            (1, 300, 40, 64, 9, 3, 1, 1),
            (3, 5, 70, 66, 33, 1, 1, 0),
        ];
        for (i, &(b, cin, h, w, cout, k, stride, pad)) in shapes.iter().enumerate() {
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
            let x = values(b * cin * h * w, i as u64);
            let wt = values(cout * cin * k * k, 100 + i as u64);
            let bias = values(cout, 200 + i as u64);
            for bias in [None, Some(bias.as_slice())] {
                let (want, mag) = reference(&x, &wt, bias, &s, false);
                let got = dense(&x, &wt, bias, &s);
                check(
                    &got,
                    &want,
                    &mag,
                    cin * k * k + 1,
                    &format!("{s:?} bias {}", bias.is_some()),
                );
            }
        }
    }

    #[test]
    fn depthwise_matches_the_definition() {
        for (i, &(b, c, h, w, k)) in [
            (1, 1, 1, 1, 3),
            (2, 3, 7, 5, 3),
            (1, 4, 33, 65, 5),
            (1, 2, 4, 4, 5),
        ]
        .iter()
        .enumerate()
        {
            let s = ConvShape {
                b,
                cin: c,
                h,
                w,
                cout: c,
                k,
                stride: 1,
                pad: k / 2,
            };
            let x = values(b * c * h * w, i as u64);
            let wt = values(c * k * k, 50 + i as u64);
            let bias = values(c, 60 + i as u64);
            for bias in [None, Some(bias.as_slice())] {
                let (want, mag) = reference(&x, &wt, bias, &s, true);
                for level in Level::available() {
                    let got = depthwise_conv(level, &x, &wt, bias, &s);
                    check(&got, &want, &mag, k * k + 1, &format!("{s:?} {level:?}"));
                }
            }
        }
    }

    #[test]
    fn valid_columns_are_exactly_the_in_bounds_ones() {
        for (k, pad, stride, w) in [
            (3, 1, 1, 5),
            (3, 1, 2, 6),
            (5, 2, 1, 3),
            (5, 2, 2, 2),
            (1, 0, 1, 4),
        ] {
            let ow = (w + 2 * pad - k) / stride + 1;
            for kw in 0..k {
                let (lo, hi) = valid(kw, pad, stride, w, ow);
                for o in 0..ow {
                    let i = (o * stride + kw) as isize - pad as isize;
                    let inside = i >= 0 && i < w as isize;
                    assert_eq!(
                        inside,
                        o >= lo && o < hi,
                        "k{k} pad{pad} s{stride} w{w} kw{kw} o{o}"
                    );
                }
            }
        }
    }
}
