//! Reconstruction of one image, the way every front end runs it (`dcae reconstruct`, the
//! workbench, `dcae eval`, training validation): fit the image to the compression factor,
//! encode and decode (tiled when asked), read back, crop to the image, measure.

use std::time::Instant;

use burn::tensor::{Tensor, TensorData};

use crate::autoencoder::{DcAe, TilePlan, Tiling};
use crate::error::{Error, Result};
use crate::io::image::{Fit, FitInfo, RgbF32, fit_to_multiple};
use crate::io::tensors::HostTensor;
use crate::metrics::{psnr_u8, ssim_rgb8};
use crate::task::{Cancel, Progress};

/// How an image is reconstructed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReconstructOptions {
    /// Sizes that are not multiples of the compression factor: centre-crop, or reflect-pad and
    /// crop the output back.
    pub fit: Fit,
    /// Decided on the fitted size.
    pub tiling: Tiling,
}

/// One finished reconstruction.
#[derive(Debug, Clone)]
pub struct Reconstruction {
    /// The input pixels the output is compared with: the fitted image cropped to `size`
    /// (the centre crop for [`Fit::Crop`], the original image for [`Fit::Pad`]).
    pub original: RgbF32,
    /// The decoded image, clamped to [-1, 1] and cropped like `original`.
    pub output: RgbF32,
    /// The unscaled latent `[C, h, w]` of the fitted image, f32.
    pub latent: HostTensor,
    pub fit: FitInfo,
    /// Tile rectangles `[x, y, w, h]` in pixels of the fitted image, when it was tiled.
    pub tiles: Option<Vec<[usize; 4]>>,
    /// PSNR and SSIM of `output` against `original`, on 8-bit values.
    pub psnr: f64,
    /// `None` when the image is smaller than the SSIM window.
    pub ssim: Option<f64>,
    /// Encode + decode + read back, in seconds.
    pub seconds: f64,
}

impl Reconstruction {
    /// Number of latent values.
    pub fn latent_values(&self) -> usize {
        self.latent.data.len()
    }
}

/// `[1, 3, H, W]` tensor of an image on `ae`'s device.
pub fn image_tensor(ae: &DcAe, img: &RgbF32) -> Tensor<4> {
    Tensor::from_data(
        TensorData::new(img.data.clone(), [1, 3, img.height, img.width]),
        &ae.device,
    )
}

/// A tensor read back to the host as f32.
pub fn host<const D: usize>(t: Tensor<D>, what: &str) -> Result<HostTensor> {
    let shape = t.dims().to_vec();
    let data = t
        .into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .map_err(|e| Error::readback(what, e))?;
    Ok(HostTensor { shape, data })
}

/// Encodes and decodes `img`. `progress` hears `encode` and `decode` tiles; `cancel` is
/// checked between tiles. Non-finite values in the latent or the output are
/// [`Error::NonFinite`].
pub fn reconstruct(
    ae: &DcAe,
    img: &RgbF32,
    opts: &ReconstructOptions,
    progress: &mut dyn Progress,
    cancel: &Cancel,
) -> Result<Reconstruction> {
    let f = ae.factor();
    let (fitted, info) = fit_to_multiple(img, f, opts.fit)?;
    let (w, h) = (fitted.width, fitted.height);
    let spec = opts.tiling.spec(h, w);
    let x = image_tensor(ae, &fitted);
    let t0 = Instant::now();
    let z = ae.encode_tiled(x, spec, progress, cancel)?;
    let y = ae.decode_tiled(z.clone(), spec, progress, cancel)?;
    let mut latent = host(z, "the latent")?;
    latent.shape.remove(0);
    let y = host(y.clamp(-1.0, 1.0), "the reconstruction")?;
    let seconds = t0.elapsed().as_secs_f64();
    if latent.data.iter().chain(&y.data).any(|v| !v.is_finite()) {
        return Err(Error::NonFinite("the model produced NaN/inf values".into()));
    }
    let (ow, oh) = match opts.fit {
        Fit::Pad => info.original,
        Fit::Crop => info.fitted,
    };
    let output = RgbF32 {
        width: w,
        height: h,
        data: y.data,
    }
    .crop(0, 0, ow, oh);
    let original = fitted.crop(0, 0, ow, oh);
    let (a, b) = (original.to_rgb8(), output.to_rgb8());
    let psnr = psnr_u8(a.as_raw(), b.as_raw());
    let ssim = ssim_rgb8(a.as_raw(), b.as_raw(), ow, oh);
    let tiles = spec
        .map(|s| TilePlan::new(h / f, w / f, f, s))
        .filter(|p| p.len() > 1)
        .map(|plan| {
            let mut rects = Vec::new();
            for r in &plan.rows {
                for c in &plan.cols {
                    rects.push([c.start * f, r.start * f, c.len * f, r.len * f]);
                }
            }
            rects
        });
    Ok(Reconstruction {
        original,
        output,
        latent,
        fit: info,
        tiles,
        psnr,
        ssim,
        seconds,
    })
}
