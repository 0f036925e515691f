//! Evaluation of an autoencoder over images (`dcae eval`): PSNR / SSIM (/ LPIPS) of each
//! reconstruction, beside a bicubic baseline that keeps as many values as the latent.

use std::path::{Path, PathBuf};

use super::reconstruct::{ReconstructOptions, image_tensor, reconstruct};
use crate::autoencoder::{DcAe, Tiling};
use crate::error::{Error, Result};
use crate::io::image::{Fit, RgbF32, load_image};
use crate::metrics::{Lpips, psnr_u8, ssim_rgb8};
use crate::task::{Cancel, Progress};

/// One evaluated image.
#[derive(Debug, Clone, PartialEq)]
pub struct EvalRow {
    pub path: PathBuf,
    /// Evaluated size (after `max_side` and fitting).
    pub width: usize,
    pub height: usize,
    pub psnr: f64,
    /// NaN when the image is smaller than the SSIM window.
    pub ssim: f64,
    /// NaN without LPIPS weights.
    pub lpips: f64,
    /// The bicubic baseline with as many values as the latent.
    pub bicubic_psnr: f64,
    pub bicubic_ssim: f64,
}

impl EvalRow {
    /// The file name (the path when it has none).
    pub fn name(&self) -> String {
        self.path.file_name().map_or_else(
            || self.path.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        )
    }
}

/// A bicubic baseline holding as many values as the latent: downscale so that
/// `h' * w' * 3 = latent values`, upscale back.
pub fn bicubic_baseline(img: &image::RgbImage, latent_values: usize) -> image::RgbImage {
    use image::imageops::{FilterType, resize};
    let (dw, dh) = bicubic_size(img.width(), img.height(), latent_values);
    let small = resize(img, dw, dh, FilterType::CatmullRom);
    resize(&small, img.width(), img.height(), FilterType::CatmullRom)
}

/// The downscaled size of [`bicubic_baseline`]: the aspect ratio kept, `w' * h' * 3` as close
/// to `values` as whole pixels allow.
pub fn bicubic_size(w: u32, h: u32, values: usize) -> (u32, u32) {
    let (w, h) = (f64::from(w), f64::from(h));
    let s = (values as f64 / (3.0 * w * h)).sqrt();
    (
        ((w * s).round() as u32).max(1),
        ((h * s).round() as u32).max(1),
    )
}

/// Downscales (bicubic) so the longer side is at most `max_side` (0 = keep).
pub fn shrink(img: &RgbF32, max_side: usize) -> RgbF32 {
    let long = img.width.max(img.height);
    if max_side == 0 || long <= max_side {
        return img.clone();
    }
    let k = max_side as f64 / long as f64;
    let (w, h) = (
        ((img.width as f64 * k).round() as u32).max(1),
        ((img.height as f64 * k).round() as u32).max(1),
    );
    let small = image::imageops::resize(
        &img.to_rgb8(),
        w,
        h,
        image::imageops::FilterType::CatmullRom,
    );
    RgbF32::from_rgb8(&small)
}

/// Evaluates one image (shrunk to `max_side`, centre-cropped to the compression factor,
/// tiled above 1 Mpx). Errors name the file.
pub fn evaluate_image(
    ae: &DcAe,
    path: &Path,
    max_side: usize,
    lpips: Option<&Lpips>,
    cancel: &Cancel,
) -> Result<EvalRow> {
    let named = |e: Error| Error::Input(format!("{}: {e}", path.display()));
    let (img, _) = load_image(path)?;
    let img = shrink(&img, max_side);
    let opts = ReconstructOptions {
        fit: Fit::Crop,
        tiling: Tiling::Auto,
    };
    let r = reconstruct(ae, &img, &opts, &mut |_: &str, _, _| {}, cancel).map_err(|e| match e {
        Error::Cancelled => e,
        e => named(e),
    })?;
    let (w, h) = (r.original.width, r.original.height);
    let a = r.original.to_rgb8();
    let base = bicubic_baseline(&a, r.latent_values());
    let lpips = match lpips {
        Some(l) => {
            let d = l.forward(image_tensor(ae, &r.original), image_tensor(ae, &r.output));
            let v = super::reconstruct::host(d, "the LPIPS distance")?;
            v.data.first().map_or(f64::NAN, |&x| f64::from(x))
        }
        None => f64::NAN,
    };
    Ok(EvalRow {
        path: path.to_path_buf(),
        width: w,
        height: h,
        psnr: r.psnr,
        ssim: r.ssim.unwrap_or(f64::NAN),
        lpips,
        bicubic_psnr: psnr_u8(a.as_raw(), base.as_raw()),
        bicubic_ssim: ssim_rgb8(a.as_raw(), base.as_raw(), w, h).unwrap_or(f64::NAN),
    })
}

/// Evaluates every file, in order; `progress` hears `("eval", images done, images)`.
pub fn evaluate(
    ae: &DcAe,
    files: &[PathBuf],
    max_side: usize,
    lpips: Option<&Lpips>,
    progress: &mut dyn Progress,
    cancel: &Cancel,
) -> Result<Vec<EvalRow>> {
    let mut rows = Vec::with_capacity(files.len());
    for (i, p) in files.iter().enumerate() {
        rows.push(evaluate_image(ae, p, max_side, lpips, cancel)?);
        progress.update("eval", i as u64 + 1, files.len() as u64);
        cancel.check()?;
    }
    Ok(rows)
}
