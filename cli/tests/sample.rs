//! `dcae sample` end to end on a fixture-sized random UViT: noise -> DPM-Solver -> DC-AE decode
//! (a fixture autoencoder) -> PNG grid with settings metadata -> `--from` reproduces it.

mod common;

use std::path::{Path, PathBuf};

use common::{dcae, fails_with, ok};
use safetensors::{Dtype, tensor::TensorView};

/// A DC-AE fixture with 8 latent channels (f32), so a 4x4 latent decodes to 128x128.
fn autoencoder() -> PathBuf {
    common::fixture("f32c32-sana-96x128-b2")
}

fn tmp(name: &str) -> PathBuf {
    common::tmp("sample-test", name)
}

/// Writes a random UViT in the reference `state_dict` layout (keys of efficientvit's UViT,
/// listed in the uvit-tiny fixture README) for in_channels c, side s, hidden d, depth 2.
fn write_random_uvit(dir: &Path, c: usize, s: usize, d: usize, heads: usize) {
    let mut state = 0x1234_5678_u64;
    let mut rnd = |n: usize, scale: f32, offset: f32| -> Vec<u8> {
        (0..n)
            .flat_map(|_| {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let u = ((state >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0;
                (offset + u * scale).to_le_bytes()
            })
            .collect()
    };
    let mut t: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
    let mut add = |k: &str, shape: Vec<usize>, off: f32| {
        let n = shape.iter().product::<usize>();
        let fan = if shape.len() > 1 {
            shape[1..].iter().product::<usize>()
        } else {
            d
        };
        let data = rnd(n, 1.0 / (fan as f32).sqrt(), off);
        t.push((k.to_string(), shape, data));
    };
    add("patch_embed.proj.weight", vec![d, c, 1, 1], 0.0);
    add("patch_embed.proj.bias", vec![d], 0.0);
    add("pos_embed", vec![1, 2 + s * s, d], 0.0);
    add("label_emb.embedding_table.weight", vec![1001, d], 0.0);
    for (blk, skip) in [
        ("in_blocks.0", false),
        ("mid_block", false),
        ("out_blocks.0", true),
    ] {
        for n in ["norm1", "norm2"] {
            add(&format!("{blk}.{n}.weight"), vec![d], 1.0);
            add(&format!("{blk}.{n}.bias"), vec![d], 0.0);
        }
        add(&format!("{blk}.attn.qkv.weight"), vec![3 * d, d], 0.0);
        add(&format!("{blk}.attn.proj.weight"), vec![d, d], 0.0);
        add(&format!("{blk}.attn.proj.bias"), vec![d], 0.0);
        add(&format!("{blk}.mlp.fc1.weight"), vec![4 * d, d], 0.0);
        add(&format!("{blk}.mlp.fc1.bias"), vec![4 * d], 0.0);
        add(&format!("{blk}.mlp.fc2.weight"), vec![d, 4 * d], 0.0);
        add(&format!("{blk}.mlp.fc2.bias"), vec![d], 0.0);
        if skip {
            add(&format!("{blk}.skip_linear.weight"), vec![d, 2 * d], 0.0);
            add(&format!("{blk}.skip_linear.bias"), vec![d], 0.0);
        }
    }
    add("norm.weight", vec![d], 1.0);
    add("norm.bias", vec![d], 0.0);
    add("decoder_pred.weight", vec![c, d], 0.0);
    add("decoder_pred.bias", vec![c], 0.0);
    let views: Vec<(String, TensorView)> = t
        .iter()
        .map(|(k, s, b)| {
            (
                k.clone(),
                TensorView::new(Dtype::F32, s.clone(), b).unwrap(),
            )
        })
        .collect();
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(
        dir.join("model.safetensors"),
        safetensors::serialize(views, None).unwrap(),
    )
    .unwrap();
    let cfg = serde_json::json!({
        "kind": "uvit",
        "model_config": {"input_size": s, "patch_size": 1, "in_channels": c,
                          "hidden_size": d, "depth": 2, "num_heads": heads},
        "scaling_factor": 0.5,
        "autoencoder": autoencoder().to_string_lossy(),
    });
    std::fs::write(dir.join("config.json"), cfg.to_string()).unwrap();
}

fn png_size(p: &Path) -> (u32, u32) {
    let img = image::open(p).unwrap();
    (img.width(), img.height())
}

#[test]
fn sample_decode_png_and_reproduce_from_metadata() {
    let d = tmp("e2e");
    let model = d.join("uvit");
    write_random_uvit(&model, 8, 4, 32, 2);
    let a = d.join("a.png");
    let m = model.to_str().unwrap();
    let o = dcae(&[
        "sample",
        "--model",
        m,
        "--class",
        "207",
        "tabby cat",
        "--seed",
        "3",
        "--steps",
        "4",
        "--cfg",
        "3",
        "--backend",
        "cpu",
        "-o",
        a.to_str().unwrap(),
    ]);
    ok(&o);
    // Two 128x128 images side by side.
    assert_eq!(png_size(&a), (256, 128));
    let b = d.join("b.png");
    ok(&dcae(&[
        "sample",
        "--from",
        a.to_str().unwrap(),
        "-o",
        b.to_str().unwrap(),
    ]));
    assert_eq!(
        std::fs::read(&a).unwrap(),
        std::fs::read(&b).unwrap(),
        "--from differs"
    );
    // Another seed gives another image (the seed reaches the noise).
    let c = d.join("c.png");
    ok(&dcae(&[
        "sample",
        "--model",
        m,
        "--class",
        "207",
        "281",
        "--seed",
        "4",
        "--steps",
        "4",
        "--cfg",
        "3",
        "--backend",
        "cpu",
        "-o",
        c.to_str().unwrap(),
    ]));
    assert_ne!(
        image::open(&a).unwrap().to_rgb8().into_raw(),
        image::open(&c).unwrap().to_rgb8().into_raw()
    );
    // Item 0 of a batch does not depend on the other items: class 207 alone at seed 3 is the
    // left half of `a`.
    let single = d.join("single.png");
    ok(&dcae(&[
        "sample",
        "--model",
        m,
        "--class",
        "golden retriever",
        "--seed",
        "3",
        "--steps",
        "4",
        "--cfg",
        "3",
        "--backend",
        "cpu",
        "-o",
        single.to_str().unwrap(),
    ]));
    let s = image::open(&single).unwrap().to_rgb8();
    let full = image::open(&a).unwrap().to_rgb8();
    let left = image::imageops::crop_imm(&full, 0, 0, 128, 128).to_image();
    // Equal up to rounding: a batch of 2 and of 1 run the same arithmetic per row, but the gemm
    // kernels may block rows differently by batch size (AVX2 vs AVX-512 differ), which can move
    // a value across a quantisation step. A dependence on the other item is far larger.
    let (a, b) = (s.into_raw(), left.into_raw());
    let worst = a
        .iter()
        .zip(&b)
        .map(|(x, y)| x.abs_diff(*y))
        .max()
        .unwrap_or(0);
    let off = a.iter().zip(&b).filter(|(x, y)| x != y).count();
    assert!(
        worst <= 2 && off * 100 <= a.len(),
        "item 0 depends on the batch: {off} of {} values differ, by up to {worst}",
        a.len()
    );
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn sample_bad_inputs() {
    let d = tmp("bad");
    let model = d.join("uvit");
    write_random_uvit(&model, 8, 4, 32, 2);
    let m = model.to_str().unwrap();
    let out = d.join("x.png");
    let o = out.to_str().unwrap();
    fails_with(
        &dcae(&[
            "sample",
            "--model",
            m,
            "--class",
            "not-a-class-xyz",
            "-o",
            o,
        ]),
        "no ImageNet class",
    );
    fails_with(
        &dcae(&["sample", "--model", m, "--class", "terrier", "-o", o]),
        "matches",
    );
    fails_with(
        &dcae(&["sample", "--model", m, "--class", "1000", "-o", o]),
        "out of range",
    );
    fails_with(
        &dcae(&[
            "sample",
            "--model",
            m,
            "--class",
            "1",
            "--sampler",
            "ddpm",
            "--backend",
            "cpu",
            "-o",
            o,
        ]),
        "does not fit",
    );
    fails_with(
        &dcae(&[
            "sample",
            "--from",
            model.join("config.json").to_str().unwrap(),
            "-o",
            o,
        ]),
        "not a readable PNG",
    );
    fails_with(
        &dcae(&[
            "sample",
            "--model",
            m,
            "--class",
            "1",
            "-o",
            d.join("x.jpg").to_str().unwrap(),
        ]),
        ".png",
    );
    let _ = std::fs::remove_dir_all(&d);
}
