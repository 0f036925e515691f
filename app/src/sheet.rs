//! The comparison sheet: original and every reconstruction side by side in one PNG, each with
//! a caption (model, PSNR/SSIM/LPIPS, latent size), text drawn with egui's own font.

use ab_glyph::{Font as _, FontRef, PxScale, ScaleFont as _};
use image::{Rgb, RgbImage, imageops};

/// One panel of the sheet.
pub struct Panel<'a> {
    pub image: &'a RgbImage,
    pub title: String,
    pub lines: Vec<String>,
}

const PAD: u32 = 12;
const TITLE_PX: f32 = 22.0;
const LINE_PX: f32 = 17.0;

/// Lays out `panels` in rows of at most `cols`, each image scaled to fit `cell` pixels wide.
pub fn compose(panels: &[Panel], cols: usize, cell: u32) -> RgbImage {
    let font = FontRef::try_from_slice(epaint_default_fonts::UBUNTU_LIGHT)
        .expect("egui's bundled font parses");
    let cols = cols.clamp(1, panels.len().max(1)) as u32;
    let rows = (panels.len() as u32).div_ceil(cols).max(1);
    let max_lines = panels.iter().map(|p| p.lines.len()).max().unwrap_or(0) as u32;
    let caption = (TITLE_PX + 6.0) as u32 + max_lines * (LINE_PX + 3.0) as u32;
    let img_h = panels
        .iter()
        .map(|p| scaled(p.image, cell).1)
        .max()
        .unwrap_or(cell);
    let (w, h) = (
        cols * (cell + PAD) + PAD,
        rows * (img_h + caption + PAD) + PAD,
    );
    let mut out = RgbImage::from_pixel(w, h, Rgb([255, 255, 255]));
    for (i, p) in panels.iter().enumerate() {
        let (cx, cy) = (i as u32 % cols, i as u32 / cols);
        let (x0, y0) = (PAD + cx * (cell + PAD), PAD + cy * (img_h + caption + PAD));
        let mut y = y0 as f32;
        draw_text(&mut out, &font, &p.title, x0 as f32, y, TITLE_PX, [0, 0, 0]);
        y += TITLE_PX + 6.0;
        for l in &p.lines {
            draw_text(&mut out, &font, l, x0 as f32, y, LINE_PX, [60, 60, 60]);
            y += LINE_PX + 3.0;
        }
        let (sw, sh) = scaled(p.image, cell);
        let img = if (sw, sh) == p.image.dimensions() {
            p.image.clone()
        } else {
            imageops::resize(p.image, sw, sh, imageops::FilterType::Triangle)
        };
        imageops::replace(&mut out, &img, i64::from(x0), i64::from(y0 + caption));
    }
    out
}

fn scaled(img: &RgbImage, cell: u32) -> (u32, u32) {
    let (w, h) = img.dimensions();
    if w <= cell {
        return (w, h);
    }
    (
        cell,
        ((h as f32 * cell as f32 / w as f32).round() as u32).max(1),
    )
}

/// Draws one line of text with its top at `y`, clipped to the image.
pub fn draw_text(
    img: &mut RgbImage,
    font: &FontRef,
    text: &str,
    x: f32,
    y: f32,
    px: f32,
    rgb: [u8; 3],
) {
    let scaled = font.as_scaled(PxScale::from(px));
    let mut caret = x;
    let mut prev = None;
    for ch in text.chars() {
        let id = scaled.glyph_id(ch);
        if let Some(p) = prev {
            caret += scaled.kern(p, id);
        }
        let g = id.with_scale_and_position(px, ab_glyph::point(caret, y + scaled.ascent()));
        caret += scaled.h_advance(id);
        prev = Some(id);
        let Some(outline) = font.outline_glyph(g) else {
            continue;
        };
        let b = outline.px_bounds();
        outline.draw(|gx, gy, cov| {
            let (px_, py_) = (
                b.min.x as i64 + i64::from(gx),
                b.min.y as i64 + i64::from(gy),
            );
            if px_ < 0 || py_ < 0 || px_ >= i64::from(img.width()) || py_ >= i64::from(img.height())
            {
                return;
            }
            let p = img.get_pixel_mut(px_ as u32, py_ as u32);
            for c in 0..3 {
                let v = f32::from(p[c]) * (1.0 - cov) + f32::from(rgb[c]) * cov;
                p[c] = v.round().clamp(0.0, 255.0) as u8;
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sheet_holds_every_panel_and_its_caption() {
        let a = RgbImage::from_pixel(64, 32, Rgb([200, 0, 0]));
        let b = RgbImage::from_pixel(64, 32, Rgb([0, 0, 200]));
        let panels = [
            Panel {
                image: &a,
                title: "Original".into(),
                lines: vec!["64x32".into()],
            },
            Panel {
                image: &b,
                title: "f32".into(),
                lines: vec!["PSNR 20.00 dB".into(), "SSIM 0.5".into()],
            },
        ];
        let s = compose(&panels, 2, 64);
        let caption = (TITLE_PX + 6.0) as u32 + 2 * (LINE_PX + 3.0) as u32;
        assert_eq!(s.width(), 2 * (64 + PAD) + PAD);
        assert_eq!(s.height(), 32 + caption + 2 * PAD);
        // Images at their places, below the captions.
        assert_eq!(s.get_pixel(PAD + 5, PAD + caption + 5), &Rgb([200, 0, 0]));
        assert_eq!(
            s.get_pixel(2 * PAD + 64 + 5, PAD + caption + 5),
            &Rgb([0, 0, 200])
        );
        // The title rendered dark pixels in the caption strip.
        let dark = (PAD..PAD + 60)
            .flat_map(|x| (PAD..PAD + 22).map(move |y| (x, y)))
            .filter(|&(x, y)| s.get_pixel(x, y)[0] < 128)
            .count();
        assert!(dark > 20, "no text drawn ({dark} dark pixels)");
    }

    #[test]
    fn wide_images_are_scaled_to_the_cell() {
        let a = RgbImage::from_pixel(400, 200, Rgb([1, 2, 3]));
        assert_eq!(scaled(&a, 100), (100, 50));
        assert_eq!(scaled(&a, 800), (400, 200));
    }
}
