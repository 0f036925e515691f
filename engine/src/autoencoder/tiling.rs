//! Tensor-free tiling geometry: where tiles go and how they blend.
//!
//! Tiles are planned in latent units, so every tile edge sits on a multiple of the compression
//! factor f for any f (diffusers' fixed 448-px stride is not a multiple of 128 and gives wrong
//! output shapes for f128; see dcae-architecture.md §4). The last tile is aligned to the image
//! end instead of being zero-padded, so no tile sees padding. Overlaps blend with linear ramps
//! and the result is normalised by the summed weights.

/// Tile size and overlap requested in pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TileSpec {
    pub tile_px: usize,
    pub overlap_px: usize,
}

/// Pixels above which [`TileSpec::auto`] tiles (about 1 Mpx: a 1024x1024 decode of f32c32 peaks
/// near 2 GB on CPU; tiles of 512 px keep it near 0.5 GB whatever the image size).
pub const AUTO_TILE_ABOVE_PX: usize = 1024 * 1024;

impl TileSpec {
    /// The default spec: 512-px tiles with 64 px of overlap (diffusers' values).
    pub const DEFAULT: TileSpec = TileSpec {
        tile_px: 512,
        overlap_px: 64,
    };

    /// `tile_px` tiles overlapping by an eighth of a tile (at least one pixel).
    pub fn with_tile(tile_px: usize) -> TileSpec {
        TileSpec {
            tile_px,
            overlap_px: (tile_px / 8).max(1),
        }
    }

    /// `Some(DEFAULT)` when an `h x w` image is large enough to need tiling, else `None`.
    pub fn auto(h: usize, w: usize) -> Option<TileSpec> {
        (h * w > AUTO_TILE_ABOVE_PX).then_some(TileSpec::DEFAULT)
    }

    /// Tile and overlap in latent units for compression factor `f`: the tile is rounded down to
    /// a multiple of f (at least f), the overlap to the nearest multiple (at least one latent
    /// pixel, and less than the tile).
    pub fn latent_units(self, f: usize) -> (usize, usize) {
        let tile = (self.tile_px / f).max(1);
        let overlap = ((self.overlap_px + f / 2) / f).max(1);
        (tile, overlap.min(tile.saturating_sub(1)))
    }
}

/// When an image is encoded and decoded in tiles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Tiling {
    /// Above [`AUTO_TILE_ABOVE_PX`], with [`TileSpec::DEFAULT`].
    #[default]
    Auto,
    /// Never (one pass, whatever the size).
    Never,
    /// Always with these tiles (one tile when the image fits in one).
    With(TileSpec),
}

impl Tiling {
    /// The tiles for an `h x w` image, or `None` for one pass.
    pub fn spec(self, h: usize, w: usize) -> Option<TileSpec> {
        match self {
            Tiling::Auto => TileSpec::auto(h, w),
            Tiling::Never => None,
            Tiling::With(s) => Some(s),
        }
    }
}

/// One tile along one axis: `[start, start + len)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    pub start: usize,
    pub len: usize,
}

impl Span {
    pub fn end(&self) -> usize {
        self.start + self.len
    }
}

/// Tiles covering `[0, len)` with tiles of `tile` and at least `overlap` shared between
/// neighbours; a single span when `len <= tile`.
pub fn plan_axis(len: usize, tile: usize, overlap: usize) -> Vec<Span> {
    if len <= tile || tile == 0 {
        return vec![Span { start: 0, len }];
    }
    let stride = tile.saturating_sub(overlap).max(1);
    let mut spans = Vec::new();
    let mut s = 0;
    loop {
        if s + tile >= len {
            spans.push(Span {
                start: len - tile,
                len: tile,
            });
            break;
        }
        spans.push(Span {
            start: s,
            len: tile,
        });
        s += stride;
    }
    spans.dedup();
    spans
}

/// Blend weights of span `k` of `spans` (in units scaled by `scale`): linear ramps across the
/// overlaps with the previous and next span, 1 elsewhere; always > 0.
pub fn blend_weights(spans: &[Span], k: usize, scale: usize) -> Vec<f32> {
    let s = spans[k];
    let len = s.len * scale;
    let left = if k > 0 {
        spans[k - 1].end().saturating_sub(s.start) * scale
    } else {
        0
    };
    let right = if k + 1 < spans.len() {
        s.end().saturating_sub(spans[k + 1].start) * scale
    } else {
        0
    };
    (0..len)
        .map(|i| {
            let mut w = 1.0f32;
            if left > 0 {
                w = w.min((i + 1) as f32 / (left + 1) as f32);
            }
            if right > 0 {
                w = w.min((len - i) as f32 / (right + 1) as f32);
            }
            w
        })
        .collect()
}

/// A 2-D tile grid in latent units.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TilePlan {
    pub rows: Vec<Span>,
    pub cols: Vec<Span>,
}

impl TilePlan {
    /// Plans a latent grid of `h x w` for `spec` at compression factor `f`.
    pub fn new(h: usize, w: usize, f: usize, spec: TileSpec) -> Self {
        let (tile, overlap) = spec.latent_units(f);
        Self {
            rows: plan_axis(h, tile, overlap),
            cols: plan_axis(w, tile, overlap),
        }
    }

    /// Number of tiles.
    pub fn len(&self) -> usize {
        self.rows.len() * self.cols.len()
    }

    /// True when the plan has no tiles (never for a non-empty grid).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Sum of blend weights over the grid scaled by `scale`, row-major `[h*scale, w*scale]`.
    pub fn weight_sum(&self, scale: usize) -> Vec<f32> {
        let h = self.rows.last().map_or(0, Span::end) * scale;
        let w = self.cols.last().map_or(0, Span::end) * scale;
        let mut sum = vec![0.0f32; h * w];
        for (ri, r) in self.rows.iter().enumerate() {
            let rw = blend_weights(&self.rows, ri, scale);
            for (ci, c) in self.cols.iter().enumerate() {
                let cw = blend_weights(&self.cols, ci, scale);
                for (y, wy) in rw.iter().enumerate() {
                    let row = (r.start * scale + y) * w;
                    for (x, wx) in cw.iter().enumerate() {
                        sum[row + c.start * scale + x] += wy * wx;
                    }
                }
            }
        }
        sum
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_tile_when_it_covers() {
        assert_eq!(plan_axis(16, 16, 2), vec![Span { start: 0, len: 16 }]);
        assert_eq!(plan_axis(3, 16, 2), vec![Span { start: 0, len: 3 }]);
    }

    #[test]
    fn tiles_cover_and_overlap() {
        for (len, tile, ov) in [(100, 16, 2), (17, 16, 2), (33, 4, 1), (64, 8, 7), (9, 2, 1)] {
            let s = plan_axis(len, tile, ov);
            assert_eq!(s[0].start, 0);
            assert_eq!(s.last().unwrap().end(), len);
            for p in s.windows(2) {
                assert!(p[1].start > p[0].start, "{p:?}");
                assert!(
                    p[0].end() >= p[1].start + ov.min(tile - 1),
                    "{len} {tile} {ov}: {p:?}"
                );
                assert_eq!(p[0].len, tile);
            }
        }
    }

    #[test]
    fn f128_tiles_stay_on_the_latent_grid() {
        // 1024 px at f128 is an 8x8 latent; 512-px tiles are 4 latents with 1 of overlap.
        let spec = TileSpec::DEFAULT;
        assert_eq!(spec.latent_units(128), (4, 1));
        assert_eq!(spec.latent_units(32), (16, 2));
        let plan = TilePlan::new(8, 8, 128, spec);
        assert_eq!(plan.rows.last().unwrap().end(), 8);
        assert_eq!(plan.weight_sum(128).len(), 1024 * 1024);
    }

    #[test]
    fn weights_ramp_and_sum_positive() {
        let spans = plan_axis(40, 16, 4);
        let w0 = blend_weights(&spans, 0, 1);
        assert_eq!(w0[0], 1.0);
        assert!(w0[15] < 0.5);
        let plan = TilePlan {
            rows: spans.clone(),
            cols: spans,
        };
        assert!(plan.weight_sum(2).iter().all(|&w| w > 0.0));
    }
}
