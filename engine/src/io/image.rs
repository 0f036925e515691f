//! Image files <-> model tensors: decoding any format the `image` crate reads, colour
//! conversion (grey, alpha, 16-bit), fitting to a multiple of the compression factor, and
//! writing 8-bit PNGs the way the reference evaluator quantises.

use std::io::{Read, Seek, SeekFrom};

use image::ImageDecoder;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::error::{Error, Result};

/// An RGB image as planar f32 in [-1, 1] (`[3, H, W]`, row-major).
#[derive(Debug, Clone, PartialEq)]
pub struct RgbF32 {
    pub width: usize,
    pub height: usize,
    pub data: Vec<f32>,
}

/// How an image whose sides are not multiples of f is made to fit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Fit {
    /// Centre-crop down to the nearest multiple (loses up to f-1 px per side).
    #[default]
    Crop,
    /// Reflect-pad right/bottom up to the next multiple; outputs are cropped back.
    Pad,
}

impl std::str::FromStr for Fit {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "crop" => Ok(Fit::Crop),
            "pad" => Ok(Fit::Pad),
            o => Err(format!("unknown fit `{o}` (crop, pad)")),
        }
    }
}

static STRICT: AtomicBool = AtomicBool::new(false);

/// Makes damaged image data (a JPEG without its end marker, a PNG without `IEND`) an error
/// instead of a note, for the rest of the process (`--strict`).
pub fn set_strict(on: bool) {
    STRICT.store(on, Ordering::SeqCst);
}

/// Decodes an image file to RGB in [-1, 1], turned upright by its EXIF orientation. Returns
/// notes on what was done to it (orientation, colour conversion, damaged data). The decode is
/// refused up front when the size the header announces needs more memory than the machine has
/// ([`crate::limits`]).
pub fn load_image(path: &Path) -> Result<(RgbF32, Vec<String>)> {
    let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
    if meta.is_dir() {
        return Err(Error::Input(format!(
            "{} is a folder, not an image file",
            path.display()
        )));
    }
    if meta.len() == 0 {
        return Err(Error::Input(format!(
            "{}: empty file (0 bytes)",
            path.display()
        )));
    }
    let bad = |e: &dyn std::fmt::Display| {
        Error::Input(format!("{}: cannot decode image: {e}", path.display()))
    };
    let open = || -> Result<image::ImageReader<std::io::BufReader<std::fs::File>>> {
        let mut reader = image::ImageReader::open(path)
            .map_err(|e| Error::io(path, e))?
            .with_guessed_format()
            .map_err(|e| Error::io(path, e))?;
        // The decoder's own allocation cap: what the machine has, not a pixel count.
        let mut l = image::Limits::default();
        l.max_alloc = Some(crate::limits::budget());
        reader.limits(l);
        Ok(reader)
    };
    let reader = open()?;
    let Some(format) = reader.format() else {
        return Err(bad(&"unrecognised format (not PNG, JPEG, WebP, ...)"));
    };
    let (w, h) = reader.into_dimensions().map_err(|e| bad(&e))?;
    crate::limits::check(
        &format!("decoding {} ({w}x{h})", path.display()),
        crate::limits::image_decode(u64::from(w), u64::from(h)),
    )?;
    let mut decoder = open()?.into_decoder().map_err(|e| bad(&e))?;
    let orientation = decoder
        .orientation()
        .unwrap_or(image::metadata::Orientation::NoTransforms);
    let mut img = image::DynamicImage::from_decoder(decoder).map_err(|e| bad(&e))?;
    let mut notes = Vec::new();
    if orientation != image::metadata::Orientation::NoTransforms {
        img.apply_orientation(orientation);
        notes.push(format!("EXIF orientation {orientation:?} applied"));
    }
    if let Some(damage) = damage_note(path, format) {
        if STRICT.load(Ordering::SeqCst) {
            return Err(Error::Input(format!("{}: {damage}", path.display())));
        }
        notes.push(format!("{damage} (--strict makes this an error)"));
    }
    let color = img.color();
    if color.channel_count() < 3 {
        notes.push("greyscale image: the grey channel is used for R, G and B".to_string());
    }
    if color.has_alpha() {
        notes.push("image has an alpha channel: composited over white".to_string());
    }
    if color.bytes_per_pixel() / color.channel_count() > 1 {
        notes.push(format!(
            "{}-bit image: converted to float without 8-bit rounding",
            8 * (color.bytes_per_pixel() / color.channel_count()) as usize
        ));
    }
    let rgba = img.to_rgba32f();
    let (w, h) = (rgba.width() as usize, rgba.height() as usize);
    let mut data = vec![0.0f32; 3 * w * h];
    for (i, px) in rgba.pixels().enumerate() {
        let a = px[3].clamp(0.0, 1.0);
        for c in 0..3 {
            let v = px[c].clamp(0.0, 1.0) * a + (1.0 - a);
            data[c * w * h + i] = v * 2.0 - 1.0;
        }
    }
    Ok((
        RgbF32 {
            width: w,
            height: h,
            data,
        },
        notes,
    ))
}

/// Damage a decoder forgives: a JPEG cut short decodes with its missing part grey, a PNG
/// without its `IEND` chunk may be cut after the last image data. Read from the file's end.
fn damage_note(path: &Path, format: image::ImageFormat) -> Option<String> {
    let mut f = std::fs::File::open(path).ok()?;
    let len = f.metadata().ok()?.len();
    let tail_len = len.min(64);
    f.seek(SeekFrom::Start(len - tail_len)).ok()?;
    let mut tail = Vec::with_capacity(tail_len as usize);
    f.take(tail_len).read_to_end(&mut tail).ok()?;
    match format {
        // EOI, possibly followed by padding.
        image::ImageFormat::Jpeg if !tail.windows(2).any(|w| w == [0xFF, 0xD9]) => Some(
            "the JPEG has no end marker: the file is probably truncated (the missing part decodes grey)"
                .to_string(),
        ),
        image::ImageFormat::Png if !tail.windows(4).any(|w| w == b"IEND") => Some(
            "the PNG has no IEND chunk: the file is probably truncated".to_string(),
        ),
        _ => None,
    }
}

impl RgbF32 {
    /// An 8-bit RGB image to planar [-1, 1].
    pub fn from_rgb8(img: &image::RgbImage) -> RgbF32 {
        let (w, h) = (img.width() as usize, img.height() as usize);
        let mut data = vec![0f32; 3 * w * h];
        for (i, p) in img.pixels().enumerate() {
            for c in 0..3 {
                data[c * w * h + i] = f32::from(p[c]) / 127.5 - 1.0;
            }
        }
        RgbF32 {
            width: w,
            height: h,
            data,
        }
    }

    /// Crops `[x0, x0+w) x [y0, y0+h)`.
    pub fn crop(&self, x0: usize, y0: usize, w: usize, h: usize) -> RgbF32 {
        let mut data = Vec::with_capacity(3 * w * h);
        for c in 0..3 {
            for y in y0..y0 + h {
                let row = c * self.width * self.height + y * self.width;
                data.extend_from_slice(&self.data[row + x0..row + x0 + w]);
            }
        }
        RgbF32 {
            width: w,
            height: h,
            data,
        }
    }

    /// Reflect-pads right and bottom to `w x h` (mirror without repeating the edge pixel).
    pub fn pad_reflect(&self, w: usize, h: usize) -> RgbF32 {
        let refl = |i: usize, n: usize| -> usize {
            if n == 1 {
                return 0;
            }
            let period = 2 * (n - 1);
            let m = i % period;
            if m < n { m } else { period - m }
        };
        let mut data = Vec::with_capacity(3 * w * h);
        for c in 0..3 {
            for y in 0..h {
                let sy = refl(y, self.height);
                let row = c * self.width * self.height + sy * self.width;
                for x in 0..w {
                    data.push(self.data[row + refl(x, self.width)]);
                }
            }
        }
        RgbF32 {
            width: w,
            height: h,
            data,
        }
    }

    /// 8-bit RGB the way the DC-AE evaluator quantises: `255 * (y/2 + 0.5) + 0.5`, clamped.
    pub fn to_rgb8(&self) -> image::RgbImage {
        let (w, h) = (self.width, self.height);
        image::RgbImage::from_fn(w as u32, h as u32, |x, y| {
            let i = y as usize * w + x as usize;
            image::Rgb(std::array::from_fn(|c| quantize(self.data[c * w * h + i])))
        })
    }
}

/// `[-1, 1]` float to u8 as the reference AE evaluator does.
pub fn quantize(v: f32) -> u8 {
    (255.0 * (v * 0.5 + 0.5) + 0.5).clamp(0.0, 255.0) as u8
}

/// What [`fit_to_multiple`] did, for printing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FitInfo {
    pub original: (usize, usize),
    pub fitted: (usize, usize),
    pub rule: Option<String>,
}

/// What [`fit_to_multiple`] will do to a `w x h` image (tensor-free). Errors when a side is
/// smaller than `f`.
pub fn fit_plan(w: usize, h: usize, f: usize, fit: Fit) -> Result<FitInfo> {
    if w < f || h < f {
        return Err(Error::Input(format!(
            "image is {w}x{h}, smaller than the compression factor {f}: each side needs at least {f} px"
        )));
    }
    if w.is_multiple_of(f) && h.is_multiple_of(f) {
        return Ok(FitInfo {
            original: (w, h),
            fitted: (w, h),
            rule: None,
        });
    }
    let (fitted, rule) = match fit {
        Fit::Crop => {
            let (nw, nh) = (w / f * f, h / f * f);
            let rule = format!(
                "{w}x{h} is not a multiple of {f}: centre-cropped to {nw}x{nh} (--fit pad keeps every pixel)"
            );
            ((nw, nh), rule)
        }
        Fit::Pad => {
            let (nw, nh) = (w.div_ceil(f) * f, h.div_ceil(f) * f);
            let rule = format!(
                "{w}x{h} is not a multiple of {f}: reflect-padded to {nw}x{nh}, outputs cropped back to {w}x{h}"
            );
            ((nw, nh), rule)
        }
    };
    Ok(FitInfo {
        original: (w, h),
        fitted,
        rule: Some(rule),
    })
}

/// Makes both sides multiples of `f` per `fit` (see [`fit_plan`]).
pub fn fit_to_multiple(img: &RgbF32, f: usize, fit: Fit) -> Result<(RgbF32, FitInfo)> {
    let (w, h) = (img.width, img.height);
    let info = fit_plan(w, h, f, fit)?;
    let (nw, nh) = info.fitted;
    let out = if (nw, nh) == (w, h) {
        img.clone()
    } else {
        match fit {
            Fit::Crop => img.crop((w - nw) / 2, (h - nh) / 2, nw, nh),
            Fit::Pad => img.pad_reflect(nw, nh),
        }
    };
    Ok((out, info))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ramp(w: usize, h: usize) -> RgbF32 {
        RgbF32 {
            width: w,
            height: h,
            data: (0..3 * w * h).map(|i| (i % 97) as f32 / 97.0).collect(),
        }
    }

    #[test]
    fn crop_and_pad_fit() {
        let img = ramp(70, 40);
        let (c, info) = fit_to_multiple(&img, 32, Fit::Crop).unwrap();
        assert_eq!((c.width, c.height), (64, 32));
        assert!(info.rule.unwrap().contains("centre-cropped"));
        let (p, _) = fit_to_multiple(&img, 32, Fit::Pad).unwrap();
        assert_eq!((p.width, p.height), (96, 64));
        // padding keeps the original pixels in place
        assert_eq!(p.crop(0, 0, 70, 40), img);
        // reflection: column 70 mirrors column 68
        assert_eq!(p.data[70], img.data[68]);
    }

    #[test]
    fn too_small_is_an_error() {
        let e = fit_to_multiple(&ramp(20, 40), 32, Fit::Pad).unwrap_err();
        assert!(
            e.to_string()
                .contains("smaller than the compression factor 32")
        );
    }

    #[test]
    fn quantize_matches_reference_rounding() {
        assert_eq!(quantize(-1.0), 0);
        assert_eq!(quantize(1.0), 255);
        assert_eq!(quantize(2.0), 255);
        // u8 -> [-1,1] -> u8 is the identity
        for v in 0..=255u8 {
            assert_eq!(quantize(v as f32 / 127.5 - 1.0), v);
        }
    }
}
