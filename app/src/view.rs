//! Zoom and pan shared by every image cell: one image point is at the centre of each cell, and
//! `zoom` screen points per image pixel. Pure geometry, unit-tested.

use egui::{Pos2, Rect, Vec2, pos2, vec2};

pub const MIN_ZOOM: f32 = 0.01;
pub const MAX_ZOOM: f32 = 64.0;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ZoomPan {
    /// Screen points per image pixel.
    pub zoom: f32,
    /// Image point (pixels) shown at the centre of every cell.
    pub center: Pos2,
    /// Re-fit on every frame (follows window resizes) until the user zooms or pans.
    pub fit: bool,
}

impl Default for ZoomPan {
    fn default() -> Self {
        ZoomPan {
            zoom: 1.0,
            center: Pos2::ZERO,
            fit: true,
        }
    }
}

impl ZoomPan {
    /// Whole image visible and centred in a cell of `cell` points.
    pub fn fit_to(&mut self, cell: Vec2, image: Vec2) {
        if image.x <= 0.0 || image.y <= 0.0 || cell.x <= 0.0 || cell.y <= 0.0 {
            return;
        }
        self.zoom = (cell.x / image.x)
            .min(cell.y / image.y)
            .clamp(MIN_ZOOM, MAX_ZOOM);
        self.center = (image / 2.0).to_pos2();
    }

    /// Where the image is drawn in a cell.
    pub fn image_rect(&self, cell: Rect, image: Vec2) -> Rect {
        Rect::from_min_size(
            cell.center() - self.center.to_vec2() * self.zoom,
            image * self.zoom,
        )
    }

    /// Image pixel coordinates under a screen point.
    pub fn to_image(&self, cell: Rect, p: Pos2) -> Pos2 {
        self.center + (p - cell.center()) / self.zoom
    }

    /// Screen point of an image coordinate.
    pub fn to_screen(&self, cell: Rect, p: Pos2) -> Pos2 {
        cell.center() + (p - self.center) * self.zoom
    }

    /// Zooms by `factor` keeping the image point under `anchor` in place.
    pub fn zoom_about(&mut self, cell: Rect, anchor: Pos2, factor: f32) {
        let before = self.to_image(cell, anchor);
        self.zoom = (self.zoom * factor).clamp(MIN_ZOOM, MAX_ZOOM);
        self.center = before - (anchor - cell.center()) / self.zoom;
        self.fit = false;
    }

    /// Drags the image by `delta` screen points.
    pub fn pan(&mut self, delta: Vec2) {
        self.center -= delta / self.zoom;
        self.fit = false;
    }

    /// One image pixel per screen pixel (`pixels_per_point` physical pixels per point).
    pub fn actual_pixels(&mut self, pixels_per_point: f32) {
        self.zoom = 1.0 / pixels_per_point.max(0.1);
        self.fit = false;
    }
}

/// Rows and columns for `n` cells of aspect `aspect` (w/h) in an area, maximising cell size.
pub fn grid_shape(n: usize, area: Vec2, aspect: f32) -> (usize, usize) {
    let n = n.max(1);
    let mut best = (1, n, 0.0f32);
    for cols in 1..=n {
        let rows = n.div_ceil(cols);
        let (cw, ch) = (area.x / cols as f32, area.y / rows as f32);
        let scale = (cw / aspect).min(ch);
        if scale > best.2 {
            best = (rows, cols, scale);
        }
    }
    (best.0, best.1)
}

/// Convenience for tests and callers holding plain numbers.
pub fn rect(x: f32, y: f32, w: f32, h: f32) -> Rect {
    Rect::from_min_size(pos2(x, y), vec2(w, h))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fit_centres_the_whole_image() {
        let mut z = ZoomPan::default();
        z.fit_to(vec2(200.0, 100.0), vec2(400.0, 100.0));
        assert_eq!(z.zoom, 0.5);
        let r = z.image_rect(rect(0.0, 0.0, 200.0, 100.0), vec2(400.0, 100.0));
        assert_eq!((r.min, r.max), (pos2(0.0, 25.0), pos2(200.0, 75.0)));
    }

    #[test]
    fn zoom_keeps_the_anchor_fixed() {
        let cell = rect(10.0, 20.0, 300.0, 200.0);
        let mut z = ZoomPan {
            zoom: 1.5,
            center: pos2(40.0, 30.0),
            fit: true,
        };
        let anchor = pos2(250.0, 60.0);
        let before = z.to_image(cell, anchor);
        z.zoom_about(cell, anchor, 3.0);
        assert_eq!(z.zoom, 4.5);
        assert!((z.to_image(cell, anchor) - before).length() < 1e-4);
        assert!(!z.fit);
        z.zoom_about(cell, anchor, 1e9);
        assert_eq!(z.zoom, MAX_ZOOM);
    }

    #[test]
    fn pan_moves_with_the_pointer() {
        let cell = rect(0.0, 0.0, 100.0, 100.0);
        let mut z = ZoomPan {
            zoom: 2.0,
            center: pos2(50.0, 50.0),
            fit: false,
        };
        let p = z.to_screen(cell, pos2(10.0, 10.0));
        z.pan(vec2(6.0, -4.0));
        assert_eq!(z.to_screen(cell, pos2(10.0, 10.0)), p + vec2(6.0, -4.0));
    }

    #[test]
    fn grid_shapes() {
        assert_eq!(grid_shape(1, vec2(800.0, 600.0), 1.0), (1, 1));
        assert_eq!(grid_shape(2, vec2(800.0, 400.0), 1.0), (1, 2));
        assert_eq!(grid_shape(4, vec2(800.0, 800.0), 1.0), (2, 2));
        assert_eq!(grid_shape(3, vec2(300.0, 900.0), 1.0), (3, 1));
    }
}
