//! The reconstruction tab's own state: the open images, which one is shown, the shared zoom
//! and pan, the split view's sides, the model the difference and latent views follow.

use std::sync::Arc;

use egui::TextureHandle;

use crate::view::ZoomPan;

/// An open image.
pub struct ImageEntry {
    pub id: u64,
    pub name: String,
    pub rgb: Arc<image::RgbImage>,
    pub texture: Option<TextureHandle>,
    /// The bicubic baseline with as many values as the models' latents (computed on a
    /// thread after the image arrives).
    pub baseline: Option<Baseline>,
}

/// The image squeezed to [`BASELINE_RATIO`] times fewer values by bicubic downscaling and
/// brought back by bicubic upscaling: what a DC-AE's compression costs without DC-AE.
pub struct Baseline {
    pub rgb: image::RgbImage,
    /// Values kept (`h' x w' x 3`), and that downscaled size.
    pub values: usize,
    pub small: (u32, u32),
    pub psnr: f64,
    pub ssim: Option<f64>,
    pub texture: Option<TextureHandle>,
}

/// Every DC-AE keeps 96x fewer values than the 8-bit image (`c = f^2 / 32`: f32c32, f64c128,
/// f128c512), so the baseline keeps as many.
pub const BASELINE_RATIO: usize = 96;

impl Baseline {
    /// Computes the baseline of `img` (seconds for tens of megapixels: call it off the UI
    /// thread).
    pub fn of(img: &image::RgbImage) -> Baseline {
        use dcae::pipeline::eval::{bicubic_baseline, bicubic_size};
        let (w, h) = img.dimensions();
        let values = (w as usize * h as usize * 3 / BASELINE_RATIO).max(3);
        let rgb = bicubic_baseline(img, values);
        let small = bicubic_size(w, h, values);
        Baseline {
            psnr: dcae::metrics::psnr_u8(img.as_raw(), rgb.as_raw()),
            ssim: dcae::metrics::ssim_rgb8(img.as_raw(), rgb.as_raw(), w as usize, h as usize),
            values: small.0 as usize * small.1 as usize * 3,
            small,
            rgb,
            texture: None,
        }
    }
}

/// Which image a split side shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slot {
    Original,
    Model(u64),
}

pub struct ReconTab {
    pub images: Vec<ImageEntry>,
    /// Index into `images` of the one shown.
    pub current: usize,
    pub zoom: ZoomPan,
    /// Left and right side of the split view, and the divider (0..1).
    pub split: (Slot, Slot, f32),
    /// The model the difference and latent views show (else the first ready one).
    pub focus: Option<u64>,
    pub latent_channel: usize,
}

impl Default for ReconTab {
    fn default() -> Self {
        Self {
            images: Vec::new(),
            current: 0,
            zoom: ZoomPan::default(),
            split: (Slot::Original, Slot::Original, 0.5),
            focus: None,
            latent_channel: 0,
        }
    }
}

impl ReconTab {
    /// The image shown.
    pub fn image(&self) -> Option<&ImageEntry> {
        self.images.get(self.current)
    }
}
