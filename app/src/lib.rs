//! DC-AE reconstruction workbench: compare autoencoders (f32/f64/f128 and any local or
//! downloaded model) on the same photo, side by side, with metrics and latent views.
//!
//! - [`app`]: the eframe app (UI state, views, command handling);
//! - [`worker`]: the model thread (loading, tiled reconstruction, LPIPS);
//! - [`command`]: every action with its label and shortcut;
//! - [`settings`]: what persists between runs;
//! - [`analysis`], [`view`], [`sheet`]: tensor-free helpers (heatmaps, PCA, zoom, sheets).

pub mod analysis;
pub mod app;
pub mod command;
pub mod settings;
pub mod sheet;
pub mod view;
pub mod worker;

pub use app::{Startup, Workbench};
