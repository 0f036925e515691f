//! Strict weight loading: half-precision files load, and a missing, unexpected or wrongly shaped
//! tensor is an error naming the key. Built from a fixture checkpoint rewritten in a temp dir.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use dcae::burn::tensor::{Tensor, TensorData};
use dcae::io::tensors::read_tensor;
use dcae::{Backend, DcAe, Error, Precision};
use dcae_conformance::{Diff, fixture_root};
use safetensors::{Dtype, SafeTensors, tensor::TensorView};

struct Raw {
    dtype: Dtype,
    shape: Vec<usize>,
    bytes: Vec<u8>,
}

fn case(name: &str) -> PathBuf {
    fixture_root("DCAE_FIXTURES", "dcae").join(name)
}

fn read_all(path: &Path) -> BTreeMap<String, Raw> {
    let bytes = std::fs::read(path).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    st.iter()
        .map(|(k, v)| {
            (
                k.to_string(),
                Raw {
                    dtype: v.dtype(),
                    shape: v.shape().to_vec(),
                    bytes: v.data().to_vec(),
                },
            )
        })
        .collect()
}

/// Writes `tensors` as one safetensors file.
fn write_file<'a>(path: &Path, tensors: impl IntoIterator<Item = (&'a String, &'a Raw)>) {
    let views: Vec<(String, TensorView)> = tensors
        .into_iter()
        .map(|(k, r)| {
            (
                k.clone(),
                TensorView::new(r.dtype, r.shape.clone(), &r.bytes).unwrap(),
            )
        })
        .collect();
    safetensors::serialize_to_file(views, None, path).unwrap();
}

/// Writes `tensors` + the case's config.json as a model folder; returns its path.
fn write_model(case_dir: &Path, tag: &str, tensors: &BTreeMap<String, Raw>) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("dcae-weights-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(case_dir.join("config.json"), dir.join("config.json")).unwrap();
    // diffusers' file name this time, to cover the other accepted name.
    write_file(&dir.join("diffusion_pytorch_model.safetensors"), tensors);
    dir
}

fn to_half(tensors: &BTreeMap<String, Raw>, bf16: bool) -> BTreeMap<String, Raw> {
    tensors
        .iter()
        .map(|(k, r)| {
            if r.dtype != Dtype::F32 {
                return (
                    k.clone(),
                    Raw {
                        dtype: r.dtype,
                        shape: r.shape.clone(),
                        bytes: r.bytes.clone(),
                    },
                );
            }
            let bytes = r
                .bytes
                .chunks_exact(4)
                .flat_map(|c| {
                    let v = f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
                    if bf16 {
                        half::bf16::from_f32(v).to_le_bytes()
                    } else {
                        half::f16::from_f32(v).to_le_bytes()
                    }
                })
                .collect();
            let dtype = if bf16 { Dtype::BF16 } else { Dtype::F16 };
            (
                k.clone(),
                Raw {
                    dtype,
                    shape: r.shape.clone(),
                    bytes,
                },
            )
        })
        .collect()
}

fn load_err(dir: &Path) -> Error {
    let dev = Backend::Cpu.device().unwrap();
    DcAe::load(dir, &dev, Precision::F32).unwrap_err()
}

#[test]
fn f16_and_bf16_files_load_and_run() {
    let c = case("f64c128-in-128x128-b1");
    let tensors = read_all(&c.join("model.safetensors"));
    let dev = Backend::Cpu.device().unwrap();
    let input = read_tensor(&c.join("input.safetensors"), "image").unwrap();
    let expected = read_tensor(&c.join("expected.safetensors"), "latent").unwrap();
    for (bf16, tag) in [(false, "f16"), (true, "bf16")] {
        let dir = write_model(&c, tag, &to_half(&tensors, bf16));
        let m = DcAe::load(&dir, &dev, Precision::F32).unwrap_or_else(|e| panic!("{tag}: {e}"));
        let s = &input.shape;
        let x = Tensor::<4>::from_data(
            TensorData::new(input.data.clone(), [s[0], s[1], s[2], s[3]]),
            &dev,
        );
        let z = m
            .encode(x)
            .unwrap()
            .into_data()
            .try_to_vec::<f32>()
            .unwrap();
        let d = Diff::of(&z, &expected.data);
        println!(
            "{tag} weights, f32 compute: latent rel-L2 {:.2e} vs the f32 reference",
            d.rel_l2
        );
        // Rounding only the weights: a few 1e-3 for f16, about 1e-2 for bf16.
        assert!(d.rel_l2 < if bf16 { 0.02 } else { 0.005 }, "{tag}: {d:?}");
    }
}

#[test]
fn missing_unexpected_and_misshaped_keys_are_named() {
    let c = case("f32c32-in-64x64-b1");
    let tensors = read_all(&c.join("model.safetensors"));

    let mut t = read_all(&c.join("model.safetensors"));
    t.remove("decoder.up_blocks.3.1.conv_out.conv_point.weight");
    let e = load_err(&write_model(&c, "missing", &t)).to_string();
    assert!(
        e.contains("missing weight `decoder.up_blocks.3.1.conv_out.conv_point.weight`"),
        "{e}"
    );

    let mut t = read_all(&c.join("model.safetensors"));
    t.insert(
        "decoder.extra_head.weight".into(),
        Raw {
            dtype: Dtype::F32,
            shape: vec![2],
            bytes: vec![0; 8],
        },
    );
    let e = load_err(&write_model(&c, "unexpected", &t)).to_string();
    assert!(
        e.contains("unexpected weight(s)") && e.contains("decoder.extra_head.weight"),
        "{e}"
    );

    let mut t = read_all(&c.join("model.safetensors"));
    let key = "encoder.conv_out.weight";
    let r = t.get_mut(key).unwrap();
    r.shape = vec![r.shape[0] * 2, r.shape[1] / 2, r.shape[2], r.shape[3]];
    let e = load_err(&write_model(&c, "shape", &t)).to_string();
    assert!(
        e.contains("weight `encoder.conv_out.weight` has shape [8, 16, 3, 3]"),
        "{e}"
    );

    // One third of a fused qkv missing is named too.
    let mut t = read_all(&c.join("model.safetensors"));
    t.remove("encoder.down_blocks.4.1.attn.to_k.weight");
    let e = load_err(&write_model(&c, "qkv", &t)).to_string();
    assert!(
        e.contains("encoder.down_blocks.4.1.attn.to_k.weight"),
        "{e}"
    );

    // Integer tensors where floats belong.
    let mut t = tensors;
    let r = t.get_mut("decoder.conv_in.bias").unwrap();
    r.dtype = Dtype::I32;
    let e = load_err(&write_model(&c, "dtype", &t)).to_string();
    assert!(
        e.contains("decoder.conv_in.bias") && e.contains("I32"),
        "{e}"
    );
}

/// Writes `parts` as shard files plus a `model.safetensors.index.json` whose `weight_map`
/// is `map` (key -> shard file); returns the index path.
fn write_shards(
    tag: &str,
    parts: &[(&str, BTreeMap<String, &Raw>)],
    map: &serde_json::Map<String, serde_json::Value>,
) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("dcae-shards-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    for (name, tensors) in parts {
        write_file(&dir.join(name), tensors.iter().map(|(k, r)| (k, *r)));
    }
    let index = dir.join("model.safetensors.index.json");
    let v = serde_json::json!({"metadata": {}, "weight_map": map});
    std::fs::write(&index, v.to_string()).unwrap();
    index
}

/// A sharded checkpoint loads key for key like the single file, and every inconsistency
/// between the index and its shards is an error naming the shard or key.
#[test]
fn sharded_checkpoints_follow_their_index_strictly() {
    use dcae::weights::{KeyLayout, WeightStore};
    let dir = case("f32c32-sana-96x128-b2");
    let all = read_all(&dir.join("model.safetensors"));
    let keys: Vec<&String> = all.keys().collect();
    let (a, b) = keys.split_at(keys.len() / 2);
    let part = |ks: &[&String]| -> BTreeMap<String, &Raw> {
        ks.iter().map(|k| ((*k).clone(), &all[*k])).collect()
    };
    let mut map = serde_json::Map::new();
    for k in a {
        map.insert((*k).clone(), "a.safetensors".into());
    }
    for k in b {
        map.insert((*k).clone(), "b.safetensors".into());
    }
    let parts = [("a.safetensors", part(a)), ("b.safetensors", part(b))];
    let index = write_shards("ok", &parts, &map);
    let mut sharded = WeightStore::from_weights(&index, None).unwrap();
    let mut single = WeightStore::from_file(&dir.join("model.safetensors")).unwrap();
    assert_eq!(sharded.len(), single.len());
    assert_eq!(sharded.layout(), KeyLayout::Diffusers);
    let first = "encoder.conv_in.weight";
    let shape = read_tensor(&dir.join("model.safetensors"), first)
        .unwrap()
        .shape;
    assert_eq!(
        sharded.take(first, &shape).unwrap().data,
        single.take(first, &shape).unwrap().data
    );
    let _ = std::fs::remove_dir_all(index.parent().unwrap());

    // Each inconsistency: (tag, edited weight map, shards, what the error must name).
    let a0 = a[0].as_str();
    let mut gone = map.clone();
    gone.insert(a0.into(), "gone.safetensors".into());
    let mut wrong = map.clone();
    wrong.insert(a0.into(), "b.safetensors".into());
    let mut unlisted = map.clone();
    unlisted.remove(a0);
    let mut dup = part(b);
    dup.insert(a0.into(), &all[a[0]]);
    let dup_parts = [("a.safetensors", part(a)), ("b.safetensors", dup)];
    type WeightMap = serde_json::Map<String, serde_json::Value>;
    let cases: [(&str, &WeightMap, &[_], &[&str]); 4] = [
        ("gone", &gone, &parts, &["gone.safetensors"]),
        ("wrong", &wrong, &parts, &[a0, "b.safetensors"]),
        ("unlisted", &unlisted, &parts, &[a0, "not in"]),
        ("dup", &map, &dup_parts, &["is also in"]),
    ];
    for (tag, m, shards, needles) in cases {
        let index = write_shards(tag, shards, m);
        let e = WeightStore::from_weights(&index, None)
            .err()
            .unwrap()
            .to_string();
        for n in needles {
            assert!(e.contains(n), "{tag}: `{e}` lacks `{n}`");
        }
        let _ = std::fs::remove_dir_all(index.parent().unwrap());
    }
}
