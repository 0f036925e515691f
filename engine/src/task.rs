//! The one task model of every long engine call: a [`Progress`] sink that hears how far the
//! call is (a stage label and `done` of `total` units) and a [`Cancel`] token it polls between
//! units (tiles, sampler steps, download chunks, training steps, evaluated images). A cancelled
//! call returns [`Error::Cancelled`]; nothing it was writing is left half-done.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::error::{Error, Result};

/// Where a long call reports how far it is. Closures `FnMut(&str, u64, u64)` are sinks.
pub trait Progress {
    /// `done` of `total` units of `stage` are finished (`total` is 0 when unknown, e.g. a
    /// download whose size the server did not announce).
    fn update(&mut self, stage: &str, done: u64, total: u64);

    /// Whether [`Progress::estimate`] is wanted: samplers only compute an estimate they do not
    /// need themselves when it is.
    fn wants_estimate(&self) -> bool {
        false
    }

    /// A sampler's current estimate of the clean latent (as the network sees it, scaled;
    /// rows of the batch first, then any guidance rows), after each step. Live previews.
    fn estimate(&mut self, _latent: &[f32]) {}

    /// Whether the current estimate should be decoded to pixels now (a full decode on demand
    /// beside the cheap previews): a pipeline that holds the autoencoder asks after each step,
    /// decodes the first item's estimate and hands it to [`Progress::decoded`].
    fn wants_decode(&self) -> bool {
        false
    }

    /// The first item's estimate through the decoder: RGB `[3, H, W]` planar in [-1, 1], or
    /// why it could not be decoded (sampling goes on either way).
    fn decoded(&mut self, _image: std::result::Result<DecodedEstimate, String>) {}
}

/// An estimate decoded on demand.
#[derive(Debug, Clone, PartialEq)]
pub struct DecodedEstimate {
    /// `[3, height, width]` planar, in [-1, 1].
    pub pixels: Vec<f32>,
    pub height: usize,
    pub width: usize,
}

impl<F: FnMut(&str, u64, u64)> Progress for F {
    fn update(&mut self, stage: &str, done: u64, total: u64) {
        self(stage, done, total)
    }
}

/// A sink that drops every report.
pub struct Silent;

impl Progress for Silent {
    fn update(&mut self, _: &str, _: u64, _: u64) {}
}

/// Fraction `done / total` in [0, 1] (0 when `total` is unknown).
pub fn fraction(done: u64, total: u64) -> f32 {
    if total == 0 {
        0.0
    } else {
        (done as f64 / total as f64).clamp(0.0, 1.0) as f32
    }
}

/// A cancel token shared between the caller (a UI button, Ctrl-C) and the call. Clones share
/// one flag.
#[derive(Debug, Clone, Default)]
pub struct Cancel(Arc<AtomicBool>);

impl Cancel {
    /// A fresh token, not cancelled.
    pub fn new() -> Self {
        Self::default()
    }

    /// A token over an existing flag (e.g. one a signal handler sets).
    pub fn from_flag(flag: Arc<AtomicBool>) -> Self {
        Self(flag)
    }

    /// The shared flag (to hand to a signal handler).
    pub fn flag(&self) -> Arc<AtomicBool> {
        self.0.clone()
    }

    /// Asks every call holding this token to stop at its next check.
    pub fn cancel(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }

    /// `Err(Error::Cancelled)` once cancelled: `cancel.check()?` between units of work.
    pub fn check(&self) -> Result<()> {
        if self.is_cancelled() {
            Err(Error::Cancelled)
        } else {
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clones_share_the_flag_and_check_is_typed() {
        let a = Cancel::new();
        let b = a.clone();
        assert!(b.check().is_ok());
        a.cancel();
        assert!(b.is_cancelled());
        assert!(matches!(b.check(), Err(Error::Cancelled)));
        let flag = Arc::new(AtomicBool::new(false));
        let c = Cancel::from_flag(flag.clone());
        flag.store(true, Ordering::SeqCst);
        assert!(c.is_cancelled());
    }

    #[test]
    fn closures_are_sinks_and_fractions_are_clamped() {
        let mut seen = Vec::new();
        {
            let mut sink = |s: &str, d: u64, t: u64| seen.push((s.to_string(), d, t));
            let p: &mut dyn Progress = &mut sink;
            p.update("encode", 1, 4);
        }
        assert_eq!(seen, vec![("encode".to_string(), 1, 4)]);
        assert_eq!(fraction(1, 4), 0.25);
        assert_eq!(fraction(5, 4), 1.0);
        assert_eq!(fraction(3, 0), 0.0);
    }
}
