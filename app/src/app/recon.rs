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
