//! Resource limits, checked before anything is allocated: one place estimates the peak memory
//! of a job from its shapes (image pixels, latent size, batch, tiles, output grid, training crop
//! x batch) and refuses, with the estimate and the limit, a job the machine cannot hold. The
//! estimates are deliberately generous (they only have to catch jobs that would abort or swap,
//! a 49 GB decode, not to predict the last megabyte); `DCAE_MEMORY_LIMIT` sets the budget
//! (`16G`, `512M`) and [`set_enforced`] (`--no-limits`) turns the check off.
//!
//! Tensor-free: sizes in, bytes out.

use std::sync::atomic::{AtomicBool, Ordering};

use crate::autoencoder::{DcAeConfig, TileSpec};
use crate::error::{Error, Result};

static ENFORCED: AtomicBool = AtomicBool::new(true);

/// Turns the memory check on or off for the rest of the process (`--no-limits`).
pub fn set_enforced(on: bool) {
    ENFORCED.store(on, Ordering::SeqCst);
}

pub fn enforced() -> bool {
    ENFORCED.load(Ordering::SeqCst)
}

/// Bytes of one f32.
const F32: u64 = 4;

/// Live activations per stage tensor: a block holds its input, its output and a few
/// intermediates (conv, norm, residual) at once; measured peaks sit below this (a 1024x1024
/// f32c32 decode peaks near 2 GB on CPU, this counts 3 GB).
const LIVE: u64 = 6;

/// The memory a job may use: `DCAE_MEMORY_LIMIT` if set, else what the OS reports available
/// (`MemAvailable`), else 8 GiB.
pub fn budget() -> u64 {
    if let Some(b) = std::env::var("DCAE_MEMORY_LIMIT")
        .ok()
        .and_then(|v| parse_size(&v))
    {
        return b;
    }
    available_memory().unwrap_or(8 << 30)
}

/// `MemAvailable` from /proc/meminfo (Linux).
pub fn available_memory() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = s.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// `16G`, `512M`, `2048K` or a byte count.
pub fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim();
    let (num, mul) = match s.chars().last()?.to_ascii_uppercase() {
        'G' => (&s[..s.len() - 1], 1u64 << 30),
        'M' => (&s[..s.len() - 1], 1 << 20),
        'K' => (&s[..s.len() - 1], 1 << 10),
        _ => (s, 1),
    };
    let v: f64 = num.trim().parse().ok()?;
    (v.is_finite() && v > 0.0).then_some((v * mul as f64) as u64)
}

/// `1.5 GB`-style text.
pub fn human(bytes: u64) -> String {
    let b = bytes as f64;
    if b >= (1u64 << 30) as f64 {
        format!("{:.1} GB", b / (1u64 << 30) as f64)
    } else {
        format!("{:.0} MB", (b / (1 << 20) as f64).ceil())
    }
}

/// Refuses `what` when `need` bytes exceed the budget (and the check is on).
pub fn check(what: &str, need: u64) -> Result<()> {
    let limit = budget();
    if enforced() && need > limit {
        return Err(Error::TooLarge {
            what: what.to_string(),
            need: human(need),
            limit: human(limit),
        });
    }
    Ok(())
}

fn mul(xs: &[u64]) -> u64 {
    xs.iter().fold(1u64, |a, &x| a.saturating_mul(x))
}

/// Decoding a `w x h` image file: the decoded buffer (up to 16-bit RGBA, 8 bytes per pixel),
/// its RGBA f32 copy (16) and the planar RGB f32 image (12).
pub fn image_decode(w: u64, h: u64) -> u64 {
    mul(&[w, h, 8 + 16 + 12])
}

/// Peak activation bytes per pixel of the full-resolution input: the widest stage, counting
/// that stage `i` runs at `1 / 4^i` of the pixels.
fn activation_per_pixel(c: &DcAeConfig) -> u64 {
    let widest = |ws: &[usize]| {
        ws.iter()
            .enumerate()
            .map(|(i, &w)| (w as u64).saturating_mul(F32) / (1u64 << (2 * i.min(31))))
            .max()
            .unwrap_or(0)
    };
    widest(&c.encoder_block_out_channels)
        .max(widest(&c.decoder_block_out_channels))
        .max(1)
        * LIVE
}

/// Encoding or decoding `batch` images of `h x w` pixels, in tiles per `tiles`: one tile's
/// activations (or the whole image's) plus the image-sized input, blend accumulator and output.
pub fn autoencoder_pass(
    c: &DcAeConfig,
    batch: u64,
    h: u64,
    w: u64,
    tiles: Option<TileSpec>,
) -> u64 {
    let (th, tw) = match tiles {
        Some(s) => {
            let t = (s.tile_px as u64).saturating_add(s.overlap_px as u64);
            (t.min(h), t.min(w))
        }
        None => (h, w),
    };
    let act = mul(&[batch, th, tw, activation_per_pixel(c)]);
    let io = mul(&[batch, h, w, 3, F32, 3]);
    act.saturating_add(io)
}

/// A class-to-image grid of `n` images of `h x w`: the decoded floats and the 8-bit grid.
pub fn image_grid(n: u64, h: u64, w: u64) -> u64 {
    mul(&[n, h, w, 3]).saturating_mul(F32 + 1)
}

/// One training step of `batch` crops of `crop` px: forward activations kept for the backward
/// pass (about 3x a forward's), LPIPS-VGG16 on the output when used.
pub fn training_step(c: &DcAeConfig, batch: u64, crop: u64, lpips: bool) -> u64 {
    let ae = mul(&[batch, crop, crop, activation_per_pixel(c), 3]);
    // VGG16 keeps ~64 channels at full resolution per image pair, twice (both images).
    let vgg = if lpips {
        mul(&[batch, crop, crop, 64, F32, LIVE, 2])
    } else {
        0
    };
    ae.saturating_add(vgg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_and_print() {
        assert_eq!(parse_size("16G"), Some(16 << 30));
        assert_eq!(parse_size("512m"), Some(512 << 20));
        assert_eq!(parse_size("1.5G"), Some(3 << 29));
        assert_eq!(parse_size("1000"), Some(1000));
        for bad in ["", "G", "-1G", "x", "0"] {
            assert_eq!(parse_size(bad), None, "{bad:?}");
        }
        assert_eq!(human(3 << 29), "1.5 GB");
        assert_eq!(human(10 << 20), "10 MB");
    }

    #[test]
    fn estimates_grow_with_size_and_tiles_bound_them() {
        let c = DcAeConfig::f32c32_in_1_0();
        let small = autoencoder_pass(&c, 1, 512, 512, None);
        let big = autoencoder_pass(&c, 1, 4096, 4096, None);
        assert!(big > 60 * small);
        let tiled = autoencoder_pass(&c, 1, 4096, 4096, Some(TileSpec::DEFAULT));
        assert!(tiled < big / 10, "{tiled} vs {big}");
        // A 1024x1024 decode of f32c32: measured ~2 GB peak; the estimate is above, not wildly.
        let m = autoencoder_pass(&c, 1, 1024, 1024, None);
        assert!((2 << 30..8 << 30).contains(&m), "{}", human(m));
        // The 2000x2000 latent decode of the bad-input report (64000^2 px): far beyond.
        assert!(autoencoder_pass(&c, 1, 64_000, 64_000, Some(TileSpec::DEFAULT)) > 100 << 30);
        // Overflow saturates instead of wrapping.
        assert_eq!(image_decode(u64::MAX, 2), u64::MAX);
    }

    #[test]
    fn the_check_names_the_job_and_can_be_turned_off() {
        let e = check("decoding a 1x1 test", u64::MAX)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("decoding a 1x1 test") && e.contains("--no-limits"),
            "{e}"
        );
        check("nothing", 1).unwrap();
    }
}
