//! Key layouts and their mapping to canonical names.
//!
//! A DC-AE checkpoint comes in the diffusers layout or the original efficientvit one; both map
//! to one *canonical* name per tensor: the diffusers name, except that `attn.to_q/to_k/to_v`
//! are fused into one `attn.qkv` weight [3T, C, 1, 1] (the original layout; the three diffusers
//! "roles" are just thirds of it, cut across head boundaries) and every 1x1 conv is 4-D.
//! Every other model (diffusion transformers, text encoders) keeps its names as they are.

use std::collections::{BTreeMap, BTreeSet};

use crate::error::{Error, Result};

/// Key layout of a checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyLayout {
    /// diffusers `AutoencoderDC` (`encoder.down_blocks.1.0.conv1.weight`, ...); also the
    /// layout of every non-autoencoder checkpoint, whose names are kept as they are (besides
    /// the fused-qkv rule, which only DC-AE attention keys match).
    Diffusers,
    /// mit-han-lab/efficientvit `DCAE` (`encoder.stages.1.op_list.0.main.conv1.conv.weight`, ...).
    EfficientVit,
}

/// How a canonical tensor is assembled from raw tensors.
#[derive(Debug, Clone)]
pub(crate) enum Source {
    One(String),
    /// Concatenate along dim 0 (diffusers to_q, to_k, to_v -> fused qkv).
    Cat(Vec<String>),
}

impl Source {
    /// The raw name(s), for messages.
    pub(crate) fn raw_name(&self) -> String {
        match self {
            Source::One(n) => n.clone(),
            Source::Cat(v) => v.join(" + "),
        }
    }
}

pub(crate) fn detect_layout<'a>(keys: impl Iterator<Item = &'a String>) -> Option<KeyLayout> {
    let (mut d, mut e) = (0, 0);
    for k in keys {
        if k.contains(".stages.") || k.contains("project_in") || k.contains("project_out") {
            e += 1;
        } else if k.contains("_blocks.") || k.contains("conv_in") || k.contains("conv_out") {
            d += 1;
        }
    }
    match (d, e) {
        (d, 0) if d > 0 => Some(KeyLayout::Diffusers),
        (0, e) if e > 0 => Some(KeyLayout::EfficientVit),
        _ => None,
    }
}

pub(crate) fn canonicalise<'a>(
    layout: KeyLayout,
    names: impl Iterator<Item = &'a String>,
) -> Result<BTreeMap<String, Source>> {
    let raw: BTreeSet<&str> = names.map(String::as_str).collect();
    let mut out: BTreeMap<String, Source> = BTreeMap::new();
    for &name in &raw {
        // Unknown efficientvit keys keep their name so `finish` reports them as unexpected.
        let canon = match layout {
            KeyLayout::Diffusers => name.to_string(),
            KeyLayout::EfficientVit => {
                efficientvit_to_canonical(name).unwrap_or_else(|| name.to_string())
            }
        };
        if let Some(prefix) = canon.strip_suffix(".attn.to_q.weight") {
            let parts = ["to_q", "to_k", "to_v"].map(|r| format!("{prefix}.attn.{r}.weight"));
            // The fused weight needs all three thirds; a missing one is reported by name.
            for p in &parts {
                if !raw.contains(p.as_str()) {
                    return Err(Error::MissingKey {
                        key: p.clone(),
                        expected: vec![],
                    });
                }
            }
            out.insert(
                format!("{prefix}.attn.qkv.weight"),
                Source::Cat(parts.to_vec()),
            );
            continue;
        }
        if canon.ends_with(".attn.to_k.weight") || canon.ends_with(".attn.to_v.weight") {
            let prefix = canon.rsplitn(3, '.').nth(2).unwrap_or_default();
            if !raw.contains(format!("{prefix}.to_q.weight").as_str()) {
                return Err(Error::MissingKey {
                    key: format!("{prefix}.to_q.weight"),
                    expected: vec![],
                });
            }
            continue;
        }
        out.insert(canon, Source::One(name.to_string()));
    }
    Ok(out)
}

/// Maps one original efficientvit key to its canonical (diffusers-style) name.
/// Returns `None` for keys of no known pattern.
pub fn efficientvit_to_canonical(name: &str) -> Option<String> {
    let p: Vec<&str> = name.split('.').collect();
    let join = |head: &str, tail: &[&str]| -> String {
        if tail.is_empty() {
            head.to_string()
        } else {
            format!("{head}.{}", tail.join("."))
        }
    };
    match p.as_slice() {
        ["encoder", "project_in", "conv", rest @ ..] => Some(join("encoder.conv_in", rest)),
        ["encoder", "project_out", "main", "op_list", "0", "conv", t]
        | ["encoder", "project_out", "op_list", "0", "conv", t] => {
            Some(format!("encoder.conv_out.{t}"))
        }
        ["decoder", "project_in", "main", "conv", t] | ["decoder", "project_in", "conv", t] => {
            Some(format!("decoder.conv_in.{t}"))
        }
        ["decoder", "project_out", "op_list", "0", t] => Some(format!("decoder.norm_out.{t}")),
        ["decoder", "project_out", "op_list", "2", "conv", rest @ ..] => {
            Some(join("decoder.conv_out", rest))
        }
        [
            part @ ("encoder" | "decoder"),
            "stages",
            i,
            "op_list",
            j,
            rest @ ..,
        ] => {
            let blocks = if *part == "encoder" {
                "down_blocks"
            } else {
                "up_blocks"
            };
            let tail = block_tail(rest)?;
            Some(format!("{part}.{blocks}.{i}.{j}.{tail}"))
        }
        _ => None,
    }
}

fn block_tail(rest: &[&str]) -> Option<String> {
    let s = match rest {
        ["main", c @ ("conv1" | "conv2"), "conv", t] => format!("{c}.{t}"),
        ["main", "conv2", "norm", t] => format!("norm.{t}"),
        ["main", "conv", "conv", t] | ["main", "conv", t] => format!("conv.{t}"),
        ["context_module", "main", "qkv", "conv", "weight"] => "attn.qkv.weight".into(),
        ["context_module", "main", "aggreg", k, "0", "weight"] => {
            format!("attn.to_qkv_multiscale.{k}.proj_in.weight")
        }
        ["context_module", "main", "aggreg", k, "1", "weight"] => {
            format!("attn.to_qkv_multiscale.{k}.proj_out.weight")
        }
        ["context_module", "main", "proj", "conv", "weight"] => "attn.to_out.weight".into(),
        ["context_module", "main", "proj", "norm", t] => format!("attn.norm_out.{t}"),
        ["local_module", "main", "inverted_conv", "conv", t] => {
            format!("conv_out.conv_inverted.{t}")
        }
        ["local_module", "main", "depth_conv", "conv", t] => format!("conv_out.conv_depth.{t}"),
        ["local_module", "main", "point_conv", "conv", t] => format!("conv_out.conv_point.{t}"),
        ["local_module", "main", "point_conv", "norm", t] => format!("conv_out.norm.{t}"),
        _ => return None,
    };
    Some(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn efficientvit_keys_map_to_diffusers_names() {
        let cases = [
            ("encoder.project_in.conv.weight", "encoder.conv_in.weight"),
            (
                "encoder.project_in.conv.conv.bias",
                "encoder.conv_in.conv.bias",
            ),
            (
                "encoder.stages.1.op_list.0.main.conv1.conv.weight",
                "encoder.down_blocks.1.0.conv1.weight",
            ),
            (
                "decoder.stages.2.op_list.3.main.conv2.norm.running_var",
                "decoder.up_blocks.2.3.norm.running_var",
            ),
            (
                "encoder.stages.1.op_list.2.main.conv.bias",
                "encoder.down_blocks.1.2.conv.bias",
            ),
            (
                "decoder.stages.4.op_list.0.main.conv.conv.weight",
                "decoder.up_blocks.4.0.conv.weight",
            ),
            (
                "encoder.stages.3.op_list.1.context_module.main.aggreg.0.1.weight",
                "encoder.down_blocks.3.1.attn.to_qkv_multiscale.0.proj_out.weight",
            ),
            (
                "decoder.stages.5.op_list.1.local_module.main.point_conv.norm.bias",
                "decoder.up_blocks.5.1.conv_out.norm.bias",
            ),
            (
                "encoder.project_out.main.op_list.0.conv.weight",
                "encoder.conv_out.weight",
            ),
            (
                "encoder.project_out.op_list.0.conv.bias",
                "encoder.conv_out.bias",
            ),
            ("decoder.project_in.main.conv.bias", "decoder.conv_in.bias"),
            (
                "decoder.project_out.op_list.0.weight",
                "decoder.norm_out.weight",
            ),
            (
                "decoder.project_out.op_list.2.conv.conv.weight",
                "decoder.conv_out.conv.weight",
            ),
        ];
        for (evit, canon) in cases {
            assert_eq!(
                efficientvit_to_canonical(evit).as_deref(),
                Some(canon),
                "{evit}"
            );
        }
        assert_eq!(
            efficientvit_to_canonical("encoder.stages.1.op_list.0.foo"),
            None
        );
    }
}
