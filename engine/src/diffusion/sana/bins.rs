//! Resolution binning of diffusers' Sana pipelines (tensor-free): the aspect-ratio tables
//! (`ASPECT_RATIO_{512,1024,2048,4096}_BIN` of `pipeline_pixart_alpha.py`,
//! `pipeline_pixart_sigma.py`, `pipeline_sana.py`), the nearest-ratio choice
//! (`PixArtImageProcessor.classify_height_width_bin`) and the resize-then-centre-crop back to
//! the requested size (`resize_and_crop_tensor`: bilinear, `align_corners=False`, no
//! antialias, by the larger ratio).

use crate::error::{Error, Result};

/// `ASPECT_RATIO_4096_BIN` (40 entries, insertion order: ties go to the first).
pub const BIN_4096: &[(&str, usize, usize)] = &[
    ("0.25", 2048, 8192),
    ("0.26", 2048, 7936),
    ("0.27", 2048, 7680),
    ("0.28", 2048, 7424),
    ("0.32", 2304, 7168),
    ("0.33", 2304, 6912),
    ("0.35", 2304, 6656),
    ("0.4", 2560, 6400),
    ("0.42", 2560, 6144),
    ("0.48", 2816, 5888),
    ("0.5", 2816, 5632),
    ("0.52", 2816, 5376),
    ("0.57", 3072, 5376),
    ("0.6", 3072, 5120),
    ("0.68", 3328, 4864),
    ("0.72", 3328, 4608),
    ("0.78", 3584, 4608),
    ("0.82", 3584, 4352),
    ("0.88", 3840, 4352),
    ("0.94", 3840, 4096),
    ("1.0", 4096, 4096),
    ("1.07", 4096, 3840),
    ("1.13", 4352, 3840),
    ("1.21", 4352, 3584),
    ("1.29", 4608, 3584),
    ("1.38", 4608, 3328),
    ("1.46", 4864, 3328),
    ("1.67", 5120, 3072),
    ("1.75", 5376, 3072),
    ("2.0", 5632, 2816),
    ("2.09", 5888, 2816),
    ("2.4", 6144, 2560),
    ("2.5", 6400, 2560),
    ("2.89", 6656, 2304),
    ("3.0", 6912, 2304),
    ("3.11", 7168, 2304),
    ("3.62", 7424, 2048),
    ("3.75", 7680, 2048),
    ("3.88", 7936, 2048),
    ("4.0", 8192, 2048),
];

/// `ASPECT_RATIO_2048_BIN` (40 entries, insertion order: ties go to the first).
pub const BIN_2048: &[(&str, usize, usize)] = &[
    ("0.25", 1024, 4096),
    ("0.26", 1024, 3968),
    ("0.27", 1024, 3840),
    ("0.28", 1024, 3712),
    ("0.32", 1152, 3584),
    ("0.33", 1152, 3456),
    ("0.35", 1152, 3328),
    ("0.4", 1280, 3200),
    ("0.42", 1280, 3072),
    ("0.48", 1408, 2944),
    ("0.5", 1408, 2816),
    ("0.52", 1408, 2688),
    ("0.57", 1536, 2688),
    ("0.6", 1536, 2560),
    ("0.68", 1664, 2432),
    ("0.72", 1664, 2304),
    ("0.78", 1792, 2304),
    ("0.82", 1792, 2176),
    ("0.88", 1920, 2176),
    ("0.94", 1920, 2048),
    ("1.0", 2048, 2048),
    ("1.07", 2048, 1920),
    ("1.13", 2176, 1920),
    ("1.21", 2176, 1792),
    ("1.29", 2304, 1792),
    ("1.38", 2304, 1664),
    ("1.46", 2432, 1664),
    ("1.67", 2560, 1536),
    ("1.75", 2688, 1536),
    ("2.0", 2816, 1408),
    ("2.09", 2944, 1408),
    ("2.4", 3072, 1280),
    ("2.5", 3200, 1280),
    ("2.89", 3328, 1152),
    ("3.0", 3456, 1152),
    ("3.11", 3584, 1152),
    ("3.62", 3712, 1024),
    ("3.75", 3840, 1024),
    ("3.88", 3968, 1024),
    ("4.0", 4096, 1024),
];

/// `ASPECT_RATIO_1024_BIN` (33 entries, insertion order: ties go to the first).
pub const BIN_1024: &[(&str, usize, usize)] = &[
    ("0.25", 512, 2048),
    ("0.28", 512, 1856),
    ("0.32", 576, 1792),
    ("0.33", 576, 1728),
    ("0.35", 576, 1664),
    ("0.4", 640, 1600),
    ("0.42", 640, 1536),
    ("0.48", 704, 1472),
    ("0.5", 704, 1408),
    ("0.52", 704, 1344),
    ("0.57", 768, 1344),
    ("0.6", 768, 1280),
    ("0.68", 832, 1216),
    ("0.72", 832, 1152),
    ("0.78", 896, 1152),
    ("0.82", 896, 1088),
    ("0.88", 960, 1088),
    ("0.94", 960, 1024),
    ("1.0", 1024, 1024),
    ("1.07", 1024, 960),
    ("1.13", 1088, 960),
    ("1.21", 1088, 896),
    ("1.29", 1152, 896),
    ("1.38", 1152, 832),
    ("1.46", 1216, 832),
    ("1.67", 1280, 768),
    ("1.75", 1344, 768),
    ("2.0", 1408, 704),
    ("2.09", 1472, 704),
    ("2.4", 1536, 640),
    ("2.5", 1600, 640),
    ("3.0", 1728, 576),
    ("4.0", 2048, 512),
];

/// `ASPECT_RATIO_512_BIN` (33 entries, insertion order: ties go to the first).
pub const BIN_512: &[(&str, usize, usize)] = &[
    ("0.25", 256, 1024),
    ("0.28", 256, 928),
    ("0.32", 288, 896),
    ("0.33", 288, 864),
    ("0.35", 288, 832),
    ("0.4", 320, 800),
    ("0.42", 320, 768),
    ("0.48", 352, 736),
    ("0.5", 352, 704),
    ("0.52", 352, 672),
    ("0.57", 384, 672),
    ("0.6", 384, 640),
    ("0.68", 416, 608),
    ("0.72", 416, 576),
    ("0.78", 448, 576),
    ("0.82", 448, 544),
    ("0.88", 480, 544),
    ("0.94", 480, 512),
    ("1.0", 512, 512),
    ("1.07", 512, 480),
    ("1.13", 544, 480),
    ("1.21", 544, 448),
    ("1.29", 576, 448),
    ("1.38", 576, 416),
    ("1.46", 608, 416),
    ("1.67", 640, 384),
    ("1.75", 672, 384),
    ("2.0", 704, 352),
    ("2.09", 736, 352),
    ("2.4", 768, 320),
    ("2.5", 800, 320),
    ("3.0", 864, 288),
    ("4.0", 1024, 256),
];

/// The table for a model's `sample_size` (latent side at its native resolution), as
/// `SanaPipeline` picks it: 128 -> 4096, 64 -> 2048, 32 -> 1024, 16 -> 512.
pub fn table_for_sample_size(
    sample_size: usize,
) -> Result<&'static [(&'static str, usize, usize)]> {
    Ok(match sample_size {
        128 => BIN_4096,
        64 => BIN_2048,
        32 => BIN_1024,
        16 => BIN_512,
        s => {
            return Err(Error::Unsupported(format!(
                "resolution binning: no aspect-ratio table for sample_size {s} (16, 32, 64, \
                 128); turn binning off"
            )));
        }
    })
}

/// The bin `(height, width)` nearest to `height / width`; ties go to the first table entry
/// (Python's `min`).
pub fn classify(height: usize, width: usize, table: &[(&str, usize, usize)]) -> (usize, usize) {
    let ar = height as f64 / width as f64;
    let mut best = (f64::INFINITY, table[0].1, table[0].2);
    for &(key, h, w) in table {
        let d = (key.parse::<f64>().unwrap_or(f64::NAN) - ar).abs();
        if d < best.0 {
            best = (d, h, w);
        }
    }
    (best.1, best.2)
}

/// How a generated `[h, w]` image becomes the requested `[new_h, new_w]`: resized to
/// `[rh, rw]` by the larger ratio (Python `int` truncation), then cropped at `(y, x)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResizeCrop {
    pub rh: usize,
    pub rw: usize,
    pub y: usize,
    pub x: usize,
}

pub fn resize_crop(h: usize, w: usize, new_h: usize, new_w: usize) -> ResizeCrop {
    if h == new_h && w == new_w {
        return ResizeCrop {
            rh: h,
            rw: w,
            y: 0,
            x: 0,
        };
    }
    let ratio = (new_h as f64 / h as f64).max(new_w as f64 / w as f64);
    let rw = (w as f64 * ratio) as usize;
    let rh = (h as f64 * ratio) as usize;
    ResizeCrop {
        rh,
        rw,
        y: rh.saturating_sub(new_h) / 2,
        x: rw.saturating_sub(new_w) / 2,
    }
}

/// Source index pair and weight of PyTorch's bilinear `align_corners=False` sampling for
/// output index `o` of `n_out` from `n_in` (f32 arithmetic, as its CPU kernel).
fn taps(o: usize, n_in: usize, n_out: usize) -> (usize, usize, f32) {
    let scale = n_in as f32 / n_out as f32;
    let src = (scale * (o as f32 + 0.5) - 0.5).max(0.0);
    let i0 = (src as usize).min(n_in - 1);
    let i1 = (i0 + 1).min(n_in - 1);
    (i0, i1, src - i0 as f32)
}

/// Bilinear resize of planar `[c, h, w]` values to `[c, rh, rw]` then the crop to `[c, new_h,
/// new_w]` ([`resize_crop`]).
pub fn resize_and_crop(
    img: &[f32],
    c: usize,
    h: usize,
    w: usize,
    new_h: usize,
    new_w: usize,
) -> Vec<f32> {
    let p = resize_crop(h, w, new_h, new_w);
    if p.rh == h && p.rw == w && p.y == 0 && p.x == 0 && h == new_h && w == new_w {
        return img.to_vec();
    }
    let ys: Vec<_> = (p.y..p.y + new_h).map(|o| taps(o, h, p.rh)).collect();
    let xs: Vec<_> = (p.x..p.x + new_w).map(|o| taps(o, w, p.rw)).collect();
    let mut out = Vec::with_capacity(c * new_h * new_w);
    for ch in 0..c {
        let plane = &img[ch * h * w..(ch + 1) * h * w];
        for &(y0, y1, ly) in &ys {
            for &(x0, x1, lx) in &xs {
                let at = |y: usize, x: usize| plane[y * w + x];
                let top = (1.0 - lx) * at(y0, x0) + lx * at(y0, x1);
                let bot = (1.0 - lx) * at(y1, x0) + lx * at(y1, x1);
                out.push((1.0 - ly) * top + ly * bot);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_are_diffusers_sizes() {
        assert_eq!(
            (
                BIN_4096.len(),
                BIN_2048.len(),
                BIN_1024.len(),
                BIN_512.len()
            ),
            (40, 40, 33, 33)
        );
        for t in [BIN_4096, BIN_2048, BIN_1024, BIN_512] {
            for &(_, h, w) in t {
                assert!(h % 32 == 0 && w % 32 == 0);
            }
        }
        assert!(table_for_sample_size(48).is_err());
    }

    #[test]
    fn nearest_ratio_and_ties() {
        // 768 / 1024 = 0.75: 0.72 and 0.78 are 0.03 away; the first (0.72) wins.
        assert_eq!(classify(768, 1024, BIN_1024), (832, 1152));
        assert_eq!(classify(1024, 1024, BIN_1024), (1024, 1024));
        assert_eq!(classify(1080, 1920, BIN_1024), (768, 1344));
        assert_eq!(classify(100, 10_000, BIN_4096), (2048, 8192));
    }

    #[test]
    fn crop_plan_covers_the_target() {
        // 832x1152 back to 768x1024: ratio max(0.923, 0.889) = 0.923 -> 768x1063, x crop 19.
        let p = resize_crop(832, 1152, 768, 1024);
        assert_eq!(
            p,
            ResizeCrop {
                rh: 768,
                rw: 1063,
                y: 0,
                x: 19
            }
        );
        let img: Vec<f32> = (0..2 * 4 * 4).map(|v| v as f32).collect();
        assert_eq!(resize_and_crop(&img, 2, 4, 4, 4, 4), img);
        // Halving a linear ramp samples between pairs: (0.5, 2.5) per row.
        let ramp: Vec<f32> = (0..4).flat_map(|_| (0..4).map(|x| x as f32)).collect();
        let half = resize_and_crop(&ramp, 1, 4, 4, 2, 2);
        assert_eq!(half, vec![0.5, 2.5, 0.5, 2.5]);
    }
}
