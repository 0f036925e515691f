//! Parameter-free reshapes: pixel (un)shuffle, channel repeat-interleave / group averaging,
//! nearest x2 upsampling (DC-AE shortcuts), unpatchify (transformers).

use burn::tensor::module::interpolate;
use burn::tensor::ops::{InterpolateMode, InterpolateOptions};
use burn::tensor::{DType, Tensor};

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

/// `[B, h*w, p*p*C] -> [B, C, h*p, w*p]` (einops `B (h w) (p1 p2 C) -> B C (h p1) (w p2)`).
pub fn unpatchify(x: Tensor<3>, h: usize, w: usize, p: usize, c: usize) -> Tensor<4> {
    let bsz = x.dims()[0];
    x.reshape([bsz, h, w, p, p, c])
        .permute([0, 5, 1, 3, 2, 4])
        .reshape([bsz, c, h * p, w * p])
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, TensorData};

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
}
