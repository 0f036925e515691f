//! End-to-end tests of the `dcae` binary: the happy paths on a real photo with a fixture model,
//! and every bad input giving one clear error line, a non-zero exit and no panic.

mod common;

use std::path::{Path, PathBuf};

use common::{dcae, fails_with, fixture, ok, s, shared, text};

/// Fixture model folder (diffusers layout, f32c32 structure).
fn model() -> PathBuf {
    fixture("f32c32-in-64x64-b1")
}

fn tmp(name: &str) -> PathBuf {
    common::tmp("cli-test", name)
}

fn assert_fails_with(o: &std::process::Output, needle: &str) {
    common::fails_with(o, needle)
}

fn copy_model(dst: &Path) {
    std::fs::create_dir_all(dst).unwrap();
    for f in ["config.json", "model.safetensors"] {
        std::fs::copy(model().join(f), dst.join(f)).unwrap();
    }
}

#[test]
fn encode_decode_reconstruct_real_photo() {
    let d = tmp("happy");
    let photo = shared().join("data/val/wiki_001.png");
    let m = model();
    let lat = d.join("lat.safetensors");
    let o = dcae(&[
        "encode",
        "--backend",
        "cpu",
        "--model",
        s(&m),
        s(&photo),
        "-o",
        s(&lat),
    ]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{out}\n{err}");
    assert!(err.contains("centre-cropped to 1248x832"), "{err}");
    assert!(out.contains("latent [1, 4, 26, 39]"), "{out}");

    let png = d.join("rec.png");
    let o = dcae(&[
        "decode",
        "--backend",
        "cpu",
        "--model",
        s(&m),
        s(&lat),
        "-o",
        s(&png),
    ]);
    assert!(o.status.success(), "{:?}", text(&o));
    let img = image::open(&png).unwrap();
    assert_eq!((img.width(), img.height()), (1248, 832));

    let st = d.join("rec.safetensors");
    let o = dcae(&[
        "decode",
        "--backend",
        "cpu",
        "--model",
        s(&m),
        s(&lat),
        "-o",
        s(&st),
    ]);
    assert!(o.status.success(), "{:?}", text(&o));

    let o = dcae(&[
        "reconstruct",
        "--backend",
        "cpu",
        "--fit",
        "pad",
        "--model",
        s(&m),
        s(&photo),
        "-o",
        s(&png),
    ]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{out}\n{err}");
    assert!(err.contains("reflect-padded to 1280x864"), "{err}");
    let line = out.lines().find(|l| l.starts_with("psnr=")).expect(&out);
    let psnr: f64 = line[5..].split(' ').next().unwrap().parse().unwrap();
    assert!(psnr.is_finite() && psnr > 0.0, "{line}");
    assert!(line.contains("ssim="), "{line}");
    let img = image::open(&png).unwrap();
    assert_eq!((img.width(), img.height()), (1276, 850));
}

#[test]
fn tensor_input_and_scaled_latent_round_trip() {
    let d = tmp("tensor");
    let m = model();
    let input = m.join("input.safetensors");
    let lat = d.join("lat.safetensors");
    let o = dcae(&[
        "encode",
        "--backend",
        "cpu",
        "--scaled",
        "--model",
        s(&m),
        s(&input),
        "-o",
        s(&lat),
    ]);
    assert!(o.status.success(), "{:?}", text(&o));
    let out = d.join("rec.safetensors");
    let o = dcae(&[
        "decode",
        "--backend",
        "cpu",
        "--model",
        s(&m),
        s(&lat),
        "-o",
        s(&out),
    ]);
    assert!(o.status.success(), "{:?}", text(&o));
    // The scaled flag travels in the file's metadata, so decode undoes it: the result equals
    // the reference reconstruction of the same input.
    let got = dcae::io::tensors::read_tensor(&out, "reconstruction").unwrap();
    let exp =
        dcae::io::tensors::read_tensor(&m.join("expected.safetensors"), "reconstruction").unwrap();
    let max = got
        .data
        .iter()
        .zip(&exp.data)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    assert!(max < 1e-3, "max abs diff {max}");
}

#[test]
fn corrupt_and_truncated_weights() {
    let d = tmp("corrupt");
    let m = d.join("m");
    copy_model(&m);
    let w = m.join("model.safetensors");
    let bytes = std::fs::read(&w).unwrap();
    let img = model().join("input.safetensors");
    let lat = d.join("l.safetensors");
    std::fs::write(&w, &bytes[..bytes.len() / 2]).unwrap();
    assert_fails_with(
        &dcae(&[
            "encode",
            "--backend",
            "cpu",
            "--model",
            s(&m),
            s(&img),
            "-o",
            s(&lat),
        ]),
        "corrupt weights file",
    );
    std::fs::write(&w, b"this is not a safetensors file at all").unwrap();
    assert_fails_with(
        &dcae(&[
            "encode",
            "--backend",
            "cpu",
            "--model",
            s(&m),
            s(&img),
            "-o",
            s(&lat),
        ]),
        "corrupt weights file",
    );
    std::fs::write(&w, b"").unwrap();
    assert_fails_with(
        &dcae(&[
            "encode",
            "--backend",
            "cpu",
            "--model",
            s(&m),
            s(&img),
            "-o",
            s(&lat),
        ]),
        "empty or truncated",
    );
    std::fs::remove_file(&w).unwrap();
    assert_fails_with(
        &dcae(&[
            "encode",
            "--backend",
            "cpu",
            "--model",
            s(&m),
            s(&img),
            "-o",
            s(&lat),
        ]),
        "no weights in",
    );
}

#[test]
fn config_weight_mismatch_and_unknown_name() {
    let d = tmp("mismatch");
    let m = d.join("m");
    copy_model(&m);
    let root = model().parent().unwrap().to_path_buf();
    std::fs::copy(
        root.join("f64c128-in-128x128-b1/config.json"),
        m.join("config.json"),
    )
    .unwrap();
    let img = model().join("input.safetensors");
    let lat = d.join("l.safetensors");
    assert_fails_with(
        &dcae(&[
            "encode",
            "--backend",
            "cpu",
            "--model",
            s(&m),
            s(&img),
            "-o",
            s(&lat),
        ]),
        "does not match the weights",
    );
    std::fs::write(
        m.join("config.json"),
        r#"{"model_name": "dc-ae-f16c4-in-9.9"}"#,
    )
    .unwrap();
    assert_fails_with(
        &dcae(&[
            "encode",
            "--backend",
            "cpu",
            "--model",
            s(&m),
            s(&img),
            "-o",
            s(&lat),
        ]),
        "unknown model name",
    );
    std::fs::write(m.join("config.json"), "{ not json").unwrap();
    assert_fails_with(
        &dcae(&[
            "encode",
            "--backend",
            "cpu",
            "--model",
            s(&m),
            s(&img),
            "-o",
            s(&lat),
        ]),
        "invalid config",
    );
}

#[test]
fn bad_images() {
    let d = tmp("images");
    let m = model();
    let lat = d.join("l.safetensors");
    let run = |p: &Path| {
        dcae(&[
            "encode",
            "--backend",
            "cpu",
            "--model",
            s(&m),
            s(p),
            "-o",
            s(&lat),
        ])
    };

    let empty = d.join("empty.png");
    std::fs::write(&empty, b"").unwrap();
    assert_fails_with(&run(&empty), "empty file");

    let garbage = d.join("garbage.png");
    std::fs::write(
        &garbage,
        [0x89u8, b'P', b'N', b'G', 1, 2, 3, 4, 5, 6, 7, 8, 9],
    )
    .unwrap();
    assert_fails_with(&run(&garbage), "cannot decode image");

    let text_file = d.join("notes.jpg");
    std::fs::write(&text_file, "hello, not an image").unwrap();
    assert_fails_with(&run(&text_file), "cannot decode image");

    let small = d.join("small.png");
    image::RgbImage::new(20, 48).save(&small).unwrap();
    assert_fails_with(&run(&small), "smaller than the compression factor 32");

    assert_fails_with(&run(&d.join("missing.png")), "missing.png");
}

/// Grey, RGBA and 16-bit images are converted (with a note saying how), not rejected.
#[test]
fn grey_rgba_and_16bit_images_are_converted_with_a_note() {
    let d = tmp("convert");
    let m = model();
    let cases: Vec<(PathBuf, &str)> = vec![
        (d.join("grey.png"), "greyscale"),
        (d.join("rgba.png"), "alpha channel"),
        (d.join("deep.png"), "16-bit"),
    ];
    image::GrayImage::from_fn(64, 64, |x, _| image::Luma([(x * 4) as u8]))
        .save(&cases[0].0)
        .unwrap();
    image::RgbaImage::from_fn(64, 64, |x, y| image::Rgba([x as u8, y as u8, 9, 128]))
        .save(&cases[1].0)
        .unwrap();
    image::ImageBuffer::<image::Rgb<u16>, Vec<u16>>::from_fn(64, 64, |x, _| {
        image::Rgb([x as u16 * 1000, 7, 65535])
    })
    .save(&cases[2].0)
    .unwrap();
    for (p, note) in cases {
        let out = d.join("rec.png");
        let o = dcae(&[
            "reconstruct",
            "--backend",
            "cpu",
            "--model",
            s(&m),
            s(&p),
            "-o",
            s(&out),
        ]);
        let (stdout, err) = text(&o);
        assert!(o.status.success(), "{}: {stdout}\n{err}", p.display());
        assert!(err.contains(note), "{}: {err}", p.display());
    }
}

#[test]
fn bad_tensor_inputs_and_outputs() {
    let d = tmp("tensors");
    let m = model();
    // expected.safetensors has no `image` key
    let o = dcae(&[
        "encode",
        "--backend",
        "cpu",
        "--model",
        s(&m),
        s(&m.join("expected.safetensors")),
        "-o",
        s(&d.join("l.safetensors")),
    ]);
    assert_fails_with(&o, "no tensor `image`");
    let o = dcae(&[
        "decode",
        "--backend",
        "cpu",
        "--model",
        s(&m),
        s(&m.join("input.safetensors")),
        "-o",
        s(&d.join("x.png")),
    ]);
    assert_fails_with(&o, "no tensor `latent`");
    let o = dcae(&[
        "encode",
        "--backend",
        "cpu",
        "--model",
        s(&m),
        s(&m.join("input.safetensors")),
        "-o",
        s(&d.join("l.txt")),
    ]);
    assert_fails_with(&o, "must end in .safetensors");
    let o = dcae(&[
        "bench",
        "--backend",
        "cpu",
        "--preset",
        "dc-ae-nope",
        "--size",
        "64",
    ]);
    assert_fails_with(&o, "unknown model name");
}

/// `dcae bench --json` prints one object per size; `--stage` times one half alone and
/// reports the other as null (what `bench/profile.sh` and `compare_reference.sh` read).
#[test]
fn bench_json_and_stages() {
    let m = model();
    let run = |stage: &str| {
        let o = dcae(&[
            "bench",
            "--backend",
            "cpu",
            "--model",
            s(&m),
            "--size",
            "64,32",
            "--runs",
            "1",
            "--json",
            "--stage",
            stage,
        ]);
        let (out, err) = text(&o);
        assert!(o.status.success(), "{err}");
        let rows: Vec<serde_json::Value> = out
            .lines()
            .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
            .collect();
        assert_eq!(rows.len(), 2, "{rows:?}");
        assert_eq!(rows[0]["size"], 64);
        assert_eq!(rows[1]["size"], 32);
        rows
    };
    for (stage, enc, dec) in [
        ("both", true, true),
        ("encode", true, false),
        ("decode", false, true),
    ] {
        for r in run(stage) {
            assert_eq!(
                r["encode_ms"].as_f64().is_some_and(|v| v > 0.0),
                enc,
                "{stage} {r}"
            );
            assert_eq!(
                r["decode_ms"].as_f64().is_some_and(|v| v > 0.0),
                dec,
                "{stage} {r}"
            );
            assert_eq!(r["encode_ms"].is_null(), !enc);
            assert_eq!(r["decode_ms"].is_null(), !dec);
        }
    }
}

/// `dcae conformance`: the reference fixtures pass on the CPU in f32 and bf16; a case whose
/// expected numbers are not the model's fails with exit 1 and names the key; a folder without
/// cases is one clear error.
#[test]
fn conformance_checks_a_machine_against_the_fixtures() {
    let src = fixture("f32c32-sana-96x128-b2");
    let root = src.parent().unwrap().to_path_buf();
    for precision in ["f32", "bf16"] {
        let o = dcae(&[
            "conformance",
            s(&root),
            "--backend",
            "cpu",
            "--precision",
            precision,
        ]);
        ok(&o);
        let (out, _) = text(&o);
        assert!(out.contains("cases pass on cpu/"), "{out}");
        assert!(
            out.lines().filter(|l| l.contains("0 failing")).count() >= 5,
            "{out}"
        );
    }
    // One case with another case's expected numbers: same keys, wrong values.
    let dir = tmp("conformance-cases");
    let case = dir.join("swapped");
    std::fs::create_dir_all(&case).unwrap();
    for f in [
        "config.json",
        "diffusion_pytorch_model.safetensors",
        "model.safetensors",
        "input.safetensors",
    ] {
        if src.join(f).is_file() {
            std::fs::copy(src.join(f), case.join(f)).unwrap();
        }
    }
    let exp = dcae::io::tensors::TensorFile::open(&src.join("expected.safetensors")).unwrap();
    let mut tensors = Vec::new();
    for k in exp.keys() {
        let mut t = exp.tensor(&k).unwrap();
        t.data.iter_mut().for_each(|v| *v = -*v - 1.0);
        tensors.push((k, t));
    }
    let refs: Vec<(&str, &dcae::io::tensors::HostTensor)> =
        tensors.iter().map(|(k, t)| (k.as_str(), t)).collect();
    dcae::io::tensors::write_tensors(&case.join("expected.safetensors"), &refs, None).unwrap();
    let o = dcae(&["conformance", s(&dir), "--backend", "cpu"]);
    fails_with(&o, "1 of 1 cases failed on cpu/F32");
    let (out, _) = text(&o);
    assert!(out.contains("latent: max|err|"), "{out}");
    fails_with(
        &dcae(&[
            "conformance",
            s(&tmp("conformance-empty")),
            "--backend",
            "cpu",
        ]),
        "no fixture case",
    );
}
