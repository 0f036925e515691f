//! DC-AE workbench: compare autoencoders (f32/f64/f128 and any local or downloaded model) on
//! the same photo, side by side, with metrics and latent views; and generate images
//! (class-conditional and text-to-image) on their latents.
//!
//! - [`app`]: the eframe app (state, command handling, logic, panels and views);
//! - [`worker`]: the model thread (loading, the engine's reconstruction pipeline, LPIPS);
//! - [`generate`]: the worker's half of the Generate tab (generation models, live previews,
//!   saving results with their settings);
//! - [`tasks`]: the JobId-keyed task table of every model job;
//! - [`error`]: typed job errors across the worker boundary, each with its suggested fix;
//! - [`command`]: every command with its label and shortcut, and the parameterised actions;
//! - [`settings`]: what persists between runs;
//! - [`gpu`]: the window's wgpu device, made able to run the models and lent to them;
//! - [`analysis`], [`view`], [`sheet`]: tensor-free helpers (heatmaps, PCA, zoom, sheets).

pub mod analysis;
pub mod app;
pub mod command;
pub mod error;
pub mod generate;
pub mod gpu;
pub mod settings;
pub mod sheet;
pub mod tasks;
pub mod view;
pub mod worker;

pub use app::{Startup, Workbench};
