//! Image quality and resource metrics: PSNR and SSIM on 8-bit RGB as the DC-AE evaluator
//! computes them, LPIPS (VGG16; the standard v0.1 weights or the shift-tolerant variant), and
//! peak memory.

pub mod lpips;
pub mod memory;
pub mod psnr;
pub mod ssim;

pub use lpips::Lpips;
pub use memory::{peak_rss_mb, reset_peak_rss};
pub use psnr::psnr_u8;
pub use ssim::ssim_rgb8;
