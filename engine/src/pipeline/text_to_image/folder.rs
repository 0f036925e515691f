//! A diffusers Sana pipeline folder: `model_index.json` and the `scheduler/`, `text_encoder/`,
//! `tokenizer/`, `transformer/` and `vae/` components, each read the way diffusers reads it
//! (sharded or single weights, precision variants by file name, dtypes from the headers).

use std::path::{Path, PathBuf};

use burn::tensor::Device;
use serde_json::Value;

use crate::autoencoder::{DcAe, DcAeConfig};
use crate::diffusion::sana::SanaModel;
use crate::error::{Error, Result};
use crate::text::{Gemma2, TextTokenizer};
use crate::weights::{Precision, WeightStore, component_weights_variant};

/// The components a Sana pipeline folder has.
pub const COMPONENTS: [&str; 5] = [
    "scheduler",
    "text_encoder",
    "tokenizer",
    "transformer",
    "vae",
];

/// Which diffusers pipeline the folder is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PipelineKind {
    /// `SanaPipeline` (and `SanaPAGPipeline`): flow sampling with CFG.
    Sana,
    /// `SanaSprintPipeline`: SCM sampling with embedded guidance.
    Sprint,
}

/// The scheduler a folder ships (`scheduler/scheduler_config.json`).
#[derive(Debug, Clone, PartialEq)]
pub struct SchedulerConfig {
    pub class: String,
    /// `flow_shift` (DPM-Solver) or `shift` (flow-matching Euler).
    pub flow_shift: Option<f64>,
    /// `sigma_data` (SCM).
    pub sigma_data: Option<f64>,
}

#[derive(Debug, Clone)]
pub struct SanaFolder {
    pub root: PathBuf,
    pub kind: PipelineKind,
    pub scheduler: SchedulerConfig,
    /// Precision variant of the weight files (`bf16`, `fp16`), `None` for the plain names.
    pub variant: Option<String>,
}

fn read_json(path: &Path) -> Result<Value> {
    crate::io::read_config(path, |t| serde_json::from_str(t))
}

impl SanaFolder {
    /// Checks the layout: `model_index.json` names a Sana pipeline and every component folder is
    /// there (one clear error for the first that is missing).
    pub fn open(root: &Path, variant: Option<&str>) -> Result<Self> {
        if !root.is_dir() {
            return Err(Error::MissingFile(format!(
                "{}: not a folder (a Sana pipeline folder or a downloaded repo)",
                root.display()
            )));
        }
        let index_path = root.join("model_index.json");
        if !index_path.is_file() {
            return Err(Error::MissingFile(format!(
                "{}: no model_index.json; a diffusers pipeline folder has one beside {}",
                root.display(),
                COMPONENTS.join("/, ")
            )));
        }
        let index = read_json(&index_path)?;
        let class = index["_class_name"].as_str().unwrap_or_default();
        let kind = match class {
            "SanaPipeline" | "SanaPAGPipeline" => PipelineKind::Sana,
            "SanaSprintPipeline" => PipelineKind::Sprint,
            other => {
                return Err(Error::Config {
                    path: index_path,
                    message: format!(
                        "pipeline `{other}`: only Sana pipelines (SanaPipeline, SanaPAGPipeline, \
                         SanaSprintPipeline) are text-to-image models here"
                    ),
                });
            }
        };
        for c in COMPONENTS {
            if !root.join(c).is_dir() {
                return Err(Error::MissingFile(format!(
                    "{}: the `{c}/` component folder is missing (a Sana pipeline needs {})",
                    root.display(),
                    COMPONENTS.join(", ")
                )));
            }
        }
        let sched_path = root.join("scheduler").join("scheduler_config.json");
        let s = read_json(&sched_path)?;
        let scheduler = SchedulerConfig {
            class: s["_class_name"].as_str().unwrap_or_default().to_string(),
            flow_shift: s["flow_shift"].as_f64().or_else(|| s["shift"].as_f64()),
            sigma_data: s["sigma_data"].as_f64(),
        };
        if let Some(v) = variant
            && !v.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            return Err(Error::Input(format!(
                "variant `{v}`: give a name like bf16 or fp16"
            )));
        }
        Ok(Self {
            root: root.to_path_buf(),
            kind,
            scheduler,
            variant: variant.map(str::to_string),
        })
    }

    pub fn component(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }

    /// The weights of a component (`model` stem for the text encoder, else
    /// `diffusion_pytorch_model`), index first.
    pub fn weights(&self, name: &str) -> Result<PathBuf> {
        let stem = if name == "text_encoder" {
            "model"
        } else {
            "diffusion_pytorch_model"
        };
        component_weights_variant(&self.component(name), stem, self.variant.as_deref())
    }

    pub fn tokenizer(&self) -> Result<TextTokenizer> {
        let p = self.component("tokenizer").join("tokenizer.json");
        if !p.is_file() {
            return Err(Error::MissingFile(format!(
                "{}: no tokenizer.json (the fast-tokenizer file; tokenizer.model alone is not read)",
                self.component("tokenizer").display()
            )));
        }
        TextTokenizer::from_file(&p)
    }

    pub fn text_encoder(&self, device: &Device, precision: Precision) -> Result<Gemma2> {
        Gemma2::load_component(
            &self.component("text_encoder"),
            self.variant.as_deref(),
            device,
            precision,
        )
    }

    pub fn transformer(&self, device: &Device, precision: Precision) -> Result<SanaModel> {
        SanaModel::load_component(
            &self.component("transformer"),
            self.variant.as_deref(),
            device,
            precision,
        )
    }

    pub fn vae_config(&self) -> Result<DcAeConfig> {
        DcAeConfig::from_file(&self.component("vae").join("config.json"))
    }

    /// The repo's own DC-AE (Sana 1.0 repos ship DC-AE 1.0, Sprint 1.1).
    pub fn vae(&self, device: &Device, precision: Precision) -> Result<DcAe> {
        let config = self.vae_config()?;
        let w = self.weights("vae")?;
        let store = WeightStore::from_weights(&w, None)?;
        DcAe::from_store(config, store, Some(&w), device, precision)
    }

    /// Parameter count of a component's weights, from the safetensors headers alone.
    pub fn param_count(&self, name: &str) -> Result<u64> {
        let w = self.weights(name)?;
        let files: Vec<PathBuf> = if w.to_string_lossy().ends_with(".json") {
            let map = crate::weights::store::index_weight_map(&crate::io::read_text(&w)?, &w)?;
            let dir = w.parent().unwrap_or(Path::new("."));
            let mut f: Vec<PathBuf> = map.values().map(|s| dir.join(s)).collect();
            f.sort();
            f.dedup();
            f
        } else {
            vec![w]
        };
        let mut n = 0u64;
        for f in files {
            n += crate::io::tensors::header_elements(&f)?;
        }
        Ok(n)
    }
}
