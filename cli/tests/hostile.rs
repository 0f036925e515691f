//! Hostile input, class by class (the bad-input report): outputs that would overwrite an
//! input, jobs too large for memory, numbers out of range, inputs that do not mean what they
//! seem. Every case is one clean `error:` line (or the documented note), never a panic, a hang
//! or a destroyed file.

mod common;

use std::path::{Path, PathBuf};

use common::{dcae, dcae_env, fails_with, fixture, ok, s, shared, text, tmp};
use dcae::io::tensors::{HostTensor, write_tensors};
use dcae::pipeline::settings::{SAMPLE_KEY, png_with_text};

/// Tiny f32c32 fixture model (4 latent channels).
fn model() -> PathBuf {
    fixture("f32c32-in-64x64-b1")
}

fn latent(path: &Path, shape: &[usize]) {
    let t = HostTensor {
        shape: shape.to_vec(),
        data: vec![0.1; shape.iter().product()],
    };
    write_tensors(path, &[("latent", &t)], None).unwrap();
}

fn sha(p: &Path) -> Vec<u8> {
    std::fs::read(p).unwrap()
}

/// A PNG whose settings chunk holds `settings` (a 2x2 grey image).
fn settings_png(path: &Path, settings: &serde_json::Value) {
    let bytes = png_with_text(&[90u8; 2 * 2 * 3], 2, 2, SAMPLE_KEY, &settings.to_string()).unwrap();
    std::fs::write(path, bytes).unwrap();
}

fn good_settings(model: &Path) -> serde_json::Value {
    serde_json::json!({
        "model": model, "autoencoder": null, "classes": [207], "seed": 1, "steps": 2,
        "cfg": 1.5, "sampler": "dpm-solver", "cols": 1, "backend": "cpu", "precision": "f32",
        "dcae_version": "0.1.0"
    })
}

#[test]
fn outputs_never_overwrite_inputs() {
    let d = tmp("hostile", "overwrite");
    let x = d.join("x.png");
    std::fs::copy(shared().join("data/val/skimage_astronaut.png"), &x).unwrap();
    let before = sha(&x);
    let m = model();
    let cpu = ["--backend", "cpu", "--model", s(&m)];
    let run = |args: &[&str]| dcae(&[args, &cpu].concat());
    fails_with(
        &run(&["reconstruct", s(&x), "-o", s(&x)]),
        "refusing to write",
    );
    // Through a link, and by another spelling of the same path.
    #[cfg(unix)]
    {
        let link = d.join("link.png");
        std::os::unix::fs::symlink(&x, &link).unwrap();
        fails_with(
            &run(&["reconstruct", s(&x), "-o", s(&link)]),
            "refusing to write",
        );
    }
    let dotted = d.join("sub/../x.png");
    std::fs::create_dir_all(d.join("sub")).unwrap();
    fails_with(
        &run(&["reconstruct", s(&x), "-o", s(&dotted)]),
        "refusing to write",
    );
    assert_eq!(sha(&x), before, "the input image changed");

    let lat = d.join("lat.safetensors");
    ok(&run(&["encode", s(&x), "-o", s(&lat)]));
    let lat_before = sha(&lat);
    fails_with(
        &run(&["decode", s(&lat), "-o", s(&lat)]),
        "refusing to write",
    );
    fails_with(
        &run(&["encode", s(&lat), "-o", s(&lat)]),
        "refusing to write",
    );
    assert_eq!(sha(&lat), lat_before, "the latent changed");

    // Any file of the model folder.
    let mcopy = d.join("model");
    std::fs::create_dir_all(&mcopy).unwrap();
    for f in ["config.json", "model.safetensors"] {
        std::fs::copy(m.join(f), mcopy.join(f)).unwrap();
    }
    let w = mcopy.join("model.safetensors");
    let w_before = sha(&w);
    fails_with(
        &dcae(&[
            "encode",
            "--backend",
            "cpu",
            "--model",
            s(&mcopy),
            s(&x),
            "-o",
            s(&w),
        ]),
        "refusing to write",
    );
    assert_eq!(sha(&w), w_before, "the model's weights changed");

    // `sample --from a.png -o a.png` would replace the image it replays.
    let a = d.join("a.png");
    settings_png(&a, &good_settings(&d));
    let a_before = sha(&a);
    fails_with(
        &dcae(&["sample", "--from", s(&a), "-o", s(&a)]),
        "refusing to write",
    );
    assert_eq!(sha(&a), a_before);
    let _ = std::fs::remove_dir_all(&d);
}

/// CRC-32 (IEEE) of a PNG chunk's type and data.
fn crc32(bytes: &[u8]) -> u32 {
    let mut c = 0xFFFF_FFFFu32;
    for &b in bytes {
        c ^= u32::from(b);
        for _ in 0..8 {
            c = if c & 1 != 0 {
                0xEDB8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
        }
    }
    !c
}

fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    out.extend((data.len() as u32).to_be_bytes());
    let mut body = kind.to_vec();
    body.extend(data);
    out.extend(&body);
    out.extend(crc32(&body).to_be_bytes());
}

/// A few-hundred-byte PNG whose header claims `side x side` RGB pixels.
fn png_claiming(side: u32) -> Vec<u8> {
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = side.to_be_bytes().to_vec();
    ihdr.extend(side.to_be_bytes());
    ihdr.extend([8, 2, 0, 0, 0]);
    chunk(&mut out, b"IHDR", &ihdr);
    // A stored (uncompressed) deflate block of 4 zero bytes inside a zlib stream.
    chunk(
        &mut out,
        b"IDAT",
        &[
            0x78, 0x01, 0x01, 0x04, 0x00, 0xFB, 0xFF, 0, 0, 0, 0, 0, 0, 0, 1,
        ],
    );
    chunk(&mut out, b"IEND", &[]);
    out
}

#[test]
fn jobs_too_large_for_memory_are_refused_before_allocating() {
    let d = tmp("hostile", "limits");
    let m = model();
    let small = [("DCAE_MEMORY_LIMIT", "64M")];
    // A 64x64 latent decodes to 2048x2048: over a 64 MB budget, within it with --no-limits.
    let lat = d.join("big.safetensors");
    latent(&lat, &[1, 4, 64, 64]);
    let out = d.join("big.png");
    let args = [
        "decode",
        "--backend",
        "cpu",
        "--model",
        s(&m),
        s(&lat),
        "-o",
        s(&out),
    ];
    fails_with(&dcae_env(&args, &small), "needs about");
    ok(&dcae_env(&[&args[..], &["--no-limits"]].concat(), &small));
    let img = image::open(&out).unwrap();
    assert_eq!((img.width(), img.height()), (2048, 2048));

    // A tiny file claiming 16384x16384 pixels is refused from its header.
    let bomb = d.join("bomb.png");
    std::fs::write(&bomb, png_claiming(16384)).unwrap();
    let o = dcae_env(
        &[
            "reconstruct",
            "--backend",
            "cpu",
            "--model",
            s(&m),
            s(&bomb),
            "-o",
            s(&d.join("r.png")),
        ],
        &[("DCAE_MEMORY_LIMIT", "1G")],
    );
    fails_with(&o, "16384x16384");
    fails_with(&o, "needs about");

    // Counts out of range are parse errors naming the range; sizes the machine cannot hold
    // are refused before the benchmark input exists.
    let bench = |extra: &[&str]| {
        dcae(&[&["bench", "--backend", "cpu", "--model", s(&m)][..], extra].concat())
    };
    fails_with(&bench(&["--size", "100000"]), "1..=65536");
    fails_with(&bench(&["--batch", "100000000"]), "1..=4096");
    fails_with(&bench(&["--size", "65504"]), "needs about");
    fails_with(
        &dcae(&[
            "sample",
            "--model",
            s(&d),
            "--class",
            "1",
            "--steps",
            "18446744073709551615",
            "-o",
            s(&out),
        ]),
        "1..=1000",
    );

    // Empty batches are refused before Burn sees them.
    let empty = d.join("empty.safetensors");
    latent(&empty, &[0, 4, 2, 2]);
    fails_with(
        &dcae(&[
            "decode",
            "--backend",
            "cpu",
            "--model",
            s(&m),
            s(&empty),
            "-o",
            s(&out),
        ]),
        "empty",
    );
    let t = HostTensor {
        shape: vec![0, 3, 64, 64],
        data: vec![],
    };
    let imgs = d.join("imgs.safetensors");
    write_tensors(&imgs, &[("image", &t)], None).unwrap();
    fails_with(
        &dcae(&[
            "encode",
            "--backend",
            "cpu",
            "--model",
            s(&m),
            s(&imgs),
            "-o",
            s(&lat),
        ]),
        "empty",
    );
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn sample_settings_are_validated_as_the_cli_validates_them() {
    let d = tmp("hostile", "settings");
    let out = d.join("o.png");
    let cases: [(&str, serde_json::Value, &str); 5] = [
        ("cols0", serde_json::json!(0), "cols 0"),
        ("cols-huge", serde_json::json!(1_000_000_000_000u64), "cols"),
        (
            "steps-huge",
            serde_json::json!(1_000_000_000_000_000u64),
            "steps",
        ),
        ("class1000", serde_json::json!([1000]), "out of range"),
        ("cfg-huge", serde_json::json!(1e38), "cfg"),
    ];
    for (name, value, needle) in cases {
        let mut v = good_settings(&d);
        let key = match name {
            n if n.starts_with("cols") => "cols",
            n if n.starts_with("steps") => "steps",
            "class1000" => "classes",
            _ => "cfg",
        };
        v[key] = value;
        let p = d.join(format!("{name}.png"));
        settings_png(&p, &v);
        fails_with(&dcae(&["sample", "--from", s(&p), "-o", s(&out)]), needle);
    }
    // The command line says the same about its own flags.
    let m = d.join("uvit");
    std::fs::create_dir_all(&m).unwrap();
    let config = |extra: &str| {
        format!(
            r#"{{"kind": "uvit", "model_config": {{"input_size": 4, "patch_size": 1, "in_channels": 8,
                 "hidden_size": 32, "depth": 2, "num_heads": 2}}{extra}}}"#
        )
    };
    std::fs::write(m.join("config.json"), config("")).unwrap();
    fails_with(
        &dcae(&[
            "sample",
            "--model",
            s(&m),
            "--class",
            "1",
            "--cfg",
            "1e38",
            "-o",
            s(&out),
        ]),
        "cfg",
    );
    // A scaling factor of 0 would decode every latent to one flat colour.
    std::fs::write(m.join("config.json"), config(r#", "scaling_factor": 0"#)).unwrap();
    fails_with(
        &dcae(&["sample", "--model", s(&m), "--class", "1", "-o", s(&out)]),
        "scaling_factor",
    );
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn inputs_mean_what_they_say() {
    let d = tmp("hostile", "inputs");
    let m = model();
    let cpu = ["--backend", "cpu", "--model", s(&m)];
    let out = d.join("o.png");

    // An image given where a latent belongs is called what it should have been.
    let photo = shared().join("data/val/skimage_astronaut.png");
    fails_with(
        &dcae(&[&["decode", s(&photo), "-o", s(&out)][..], &cpu].concat()),
        "is not a readable latent file",
    );
    // A header naming a tensor twice.
    let dup = d.join("dup.safetensors");
    let header = br#"{"latent":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"latent":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#;
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend(header);
    bytes.extend(0f32.to_le_bytes());
    std::fs::write(&dup, bytes).unwrap();
    fails_with(
        &dcae(&[&["decode", s(&dup), "-o", s(&out)][..], &cpu].concat()),
        "twice",
    );

    // An image tensor outside [-1, 1] is encoded, with a note.
    let t = HostTensor {
        shape: vec![1, 3, 64, 64],
        data: (0..3 * 64 * 64).map(|i| (i % 512) as f32).collect(),
    };
    let imgs = d.join("imgs.safetensors");
    write_tensors(&imgs, &[("image", &t)], None).unwrap();
    let o = dcae(
        &[
            &["encode", s(&imgs), "-o", s(&d.join("l.safetensors"))][..],
            &cpu,
        ]
        .concat(),
    );
    ok(&o);
    assert!(
        text(&o).1.contains("the model expects images in [-1, 1]"),
        "{:?}",
        text(&o)
    );

    // EXIF orientation: the sideways-stored JPEG comes out upright (32x48, red on top).
    let jpg = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/data/orientation6.jpg");
    let rec = d.join("upright.png");
    let o = dcae(
        &[
            &["reconstruct", "--fit", "pad", s(&jpg), "-o", s(&rec)][..],
            &cpu,
        ]
        .concat(),
    );
    ok(&o);
    assert!(text(&o).1.contains("EXIF orientation"), "{:?}", text(&o));
    let img = image::open(&rec).unwrap();
    assert_eq!((img.width(), img.height()), (32, 48));

    // A truncated JPEG: a note, or an error under --strict.
    let cut = d.join("cut.jpg");
    let full =
        std::fs::read(shared().join("data/val/unsplash_janice-gill-0PueFmKKF28.jpg")).unwrap();
    std::fs::write(&cut, &full[..full.len() * 2 / 3]).unwrap();
    let args = [&["reconstruct", s(&cut), "-o", s(&out)][..], &cpu].concat();
    let o = dcae(&args);
    let (_, err) = text(&o);
    assert!(!err.contains("panicked"), "{err}");
    if o.status.success() {
        assert!(err.contains("truncated"), "{err}");
    }
    fails_with(&dcae(&[&args[..], &["--strict"]].concat()), "");

    // `eval` over a folder names the file that failed.
    let folder = d.join("eval");
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::copy(&photo, folder.join("a.png")).unwrap();
    std::fs::write(folder.join("b.png"), b"\x89PNG\r\n\x1a\nnot really").unwrap();
    fails_with(&dcae(&["eval", "--model", s(&m), s(&folder)]), "b.png");
    let _ = std::fs::remove_dir_all(&d);
}
