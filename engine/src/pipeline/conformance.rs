//! Conformance against reference fixtures: a case folder holds a DC-AE (`config.json` +
//! weights), its input images (`input.safetensors`, key `image`) and what the reference
//! implementation computed (`expected.safetensors`: `latent`, `reconstruction` and every
//! recorded stage). [`check_case`] runs the encoder on the input and the decoder on the stored
//! latent (so their errors stay apart) on any backend and precision, and compares key by key.
//! The test suite (`tests/dcae_fixtures.rs`) and `dcae conformance` (a GPU machine checking
//! itself before a run) share it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use burn::tensor::{DType, Device, Tensor, TensorData};

use crate::autoencoder::DcAe;
use crate::error::{Error, Result};
use crate::io::tensors::{TensorFile, read_tensor};
use crate::nn::Trace;
use crate::weights::Precision;

/// The fixtures README's tolerances: f32 max|err| <= 5e-4 * max(1, max|ref|) and rel-L2 <=
/// 1e-4 (the reference's own f32-vs-f64 error is at most 3.7e-5; bugs give 1e-1 to 1).
pub const F32_TOL: (f64, f64) = (5e-4, 1e-4);
/// Half precision (bf16 / f16), on latent and reconstruction only. The fixtures' random-weight
/// models amplify rounding (fixtures README: the reference itself cast to bf16 is off by up to
/// 0.42 max-abs / 0.23 rel-L2 against f64), so max|err| <= 0.25 * max(1, max|ref|) and rel-L2
/// <= 0.1: about half the reference's own half-precision error, still far below the 0.6-1.1
/// that real bugs (per-role qkv, mis-grouped shortcuts) give.
pub const HALF_TOL: (f64, f64) = (0.25, 0.1);
/// The keys checked in half precision.
pub const HALF_KEYS: &[&str] = &["latent", "reconstruction"];

/// Error statistics of `got` against `expected`.
#[derive(Debug, Clone, Copy)]
pub struct Diff {
    pub max_abs: f64,
    pub max_ref: f64,
    pub rel_l2: f64,
}

impl Diff {
    pub fn of(got: &[f32], expected: &[f32]) -> Diff {
        if got.len() != expected.len() {
            // A wrong number of values must fail whatever they are.
            return Diff {
                max_abs: f64::INFINITY,
                max_ref: 0.0,
                rel_l2: f64::INFINITY,
            };
        }
        let (mut max_abs, mut max_ref, mut num, mut den) = (0f64, 0f64, 0f64, 0f64);
        for (&g, &e) in got.iter().zip(expected) {
            let d = (f64::from(g) - f64::from(e)).abs();
            // NaN must fail, so it becomes infinite error.
            let d = if d.is_nan() { f64::INFINITY } else { d };
            max_abs = max_abs.max(d);
            max_ref = max_ref.max(f64::from(e).abs());
            num += d * d;
            den += f64::from(e) * f64::from(e);
        }
        let rel_l2 = if den > 0.0 {
            num.sqrt() / den.sqrt()
        } else {
            num.sqrt()
        };
        Diff {
            max_abs,
            max_ref,
            rel_l2,
        }
    }

    /// max abs <= `abs_tol * max(1, max|expected|)` and rel-L2 <= `rel_tol`.
    pub fn passes(&self, abs_tol: f64, rel_tol: f64) -> bool {
        self.max_abs <= abs_tol * self.max_ref.max(1.0) && self.rel_l2 <= rel_tol
    }

    /// The error as a fraction of the larger of 1 and the reference's largest value.
    pub fn scaled(&self) -> f64 {
        self.max_abs / self.max_ref.max(1.0)
    }
}

/// What one case gave: the keys that failed (with their numbers) and the worst key.
#[derive(Debug, Clone, Default)]
pub struct CaseReport {
    pub failures: Vec<String>,
    pub worst: Option<(String, Diff)>,
}

/// Every folder under `root` (recursively) that holds a `config.json`, sorted.
pub fn case_dirs(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                if p.join("config.json").is_file() {
                    out.push(p);
                } else {
                    stack.push(p);
                }
            }
        }
    }
    out.sort();
    out
}

/// Runs one case on `device` in `precision` and compares every expected key (or only those in
/// `only`, when not empty) with `tol = (abs, rel)`. An error is a case that could not run (a
/// missing or unreadable file, a model that does not load).
pub fn check_case(
    dir: &Path,
    device: &Device,
    precision: Precision,
    tol: (f64, f64),
    only: &[&str],
) -> Result<CaseReport> {
    let model = DcAe::load(dir, device, precision)?;
    let input = read_tensor(&dir.join("input.safetensors"), "image")?;
    let expected = TensorFile::open(&dir.join("expected.safetensors"))?;
    let latent = expected.tensor("latent")?;
    let to_t = |s: &[usize], d: Vec<f32>| -> Result<Tensor<4>> {
        let [a, b, c, e] = s else {
            return Err(Error::Input(format!(
                "{}: a fixture tensor of shape {s:?} is not [N, C, H, W]",
                dir.display()
            )));
        };
        Ok(Tensor::<4>::from_data(
            TensorData::new(d, [*a, *b, *c, *e]),
            device,
        ))
    };
    let mut trace = Trace::on();
    model.encode_traced(to_t(&input.shape, input.data)?, &mut trace)?;
    let mut dtrace = Trace::on();
    model.decode_traced(to_t(&latent.shape, latent.data)?, &mut dtrace)?;
    let mut produced: BTreeMap<String, (Vec<usize>, Vec<f32>)> = BTreeMap::new();
    for (k, t) in trace
        .into_entries()
        .into_iter()
        .chain(dtrace.into_entries())
    {
        let shape = t.dims().to_vec();
        let values = t
            .cast(DType::F32)
            .into_data()
            .try_into_vec::<f32>()
            .map_err(|e| Error::Device(format!("reading back `{k}`: {e:?}")))?;
        produced.insert(k, (shape, values));
    }

    let mut report = CaseReport::default();
    for key in expected.keys() {
        if !only.is_empty() && !only.contains(&key.as_str()) {
            continue;
        }
        let exp = expected.tensor(&key)?;
        let Some((shape, got)) = produced.get(&key) else {
            report
                .failures
                .push(format!("{key}: not produced by the engine"));
            continue;
        };
        if *shape != exp.shape {
            report
                .failures
                .push(format!("{key}: shape {shape:?}, expected {:?}", exp.shape));
            continue;
        }
        let d = Diff::of(got, &exp.data);
        if report
            .worst
            .as_ref()
            .is_none_or(|(_, w)| d.scaled() > w.scaled())
        {
            report.worst = Some((key.clone(), d));
        }
        if !d.passes(tol.0, tol.1) {
            report.failures.push(format!(
                "{key}: max|err| {:.3e} (max|ref| {:.3e}), rel_l2 {:.3e}",
                d.max_abs, d.max_ref, d.rel_l2
            ));
        }
    }
    Ok(report)
}

/// One line for a case: its worst key and how many keys failed.
pub fn summary(label: &str, name: &str, r: &CaseReport) -> String {
    match &r.worst {
        Some((k, d)) => format!(
            "{label} {name}: worst {k} max|err| {:.2e} (max|ref| {:.2e}) rel_l2 {:.2e}; {} failing",
            d.max_abs,
            d.max_ref,
            d.rel_l2,
            r.failures.len()
        ),
        None => format!("{label} {name}: {} failing", r.failures.len()),
    }
}
