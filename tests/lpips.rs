//! LPIPS (shift-tolerant VGG16 from the `stlpips-pytorch` wheel) against distances computed by
//! that package itself (`tests/tools/make_lpips_reference.py`, torch 2.15, CPU f32).
//!
//! Weights: `DCAE_LPIPS_WEIGHTS=<file>`, else `target/lpips/...` as fetched by
//! `tools/fetch-lpips-weights.sh` (the README's test command runs it first).

use std::path::PathBuf;

use dcae::burn::tensor::{Device, Tensor, TensorData};
use dcae::io::tensors::{HostTensor, TensorFile, write_tensors};
use dcae::metrics::lpips::read_any_tensors;
use dcae::metrics::lpips::{Lpips, LpipsVariant};

fn weights() -> PathBuf {
    if let Ok(p) = std::env::var("DCAE_LPIPS_WEIGHTS") {
        return PathBuf::from(p);
    }
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../target/lpips/stlpips_pytorch/weights/vST0.0/vgg_shift_tolerant.pth");
    assert!(
        p.is_file(),
        "LPIPS weights missing at {}: run tools/fetch-lpips-weights.sh (or set DCAE_LPIPS_WEIGHTS)",
        p.display()
    );
    p
}

fn t4(f: &TensorFile, key: &str, device: &Device) -> Tensor<4> {
    let h = f.tensor(key).unwrap();
    let s = &h.shape;
    Tensor::from_data(TensorData::new(h.data, [s[0], s[1], s[2], s[3]]), device)
}

#[test]
fn shift_tolerant_vgg_matches_the_reference_package() {
    let device = Device::flex();
    let (lpips, src) = Lpips::load(&[weights()], &device).unwrap();
    assert_eq!(src.variant, LpipsVariant::VggShiftTolerant);
    let f = TensorFile::open(
        &PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("data/lpips_stlpips_vgg.safetensors"),
    )
    .unwrap();
    check_cases(&lpips, &f, &f, &device, "shift-tolerant");
}

/// LPIPS of the input pairs `a<case>`, `b<case>` in `inputs` against the distances `d<case>`
/// in `want`, for both cases: one distance per pair, within 1e-4 + 1e-3 relative.
fn check_cases(
    lpips: &Lpips,
    inputs: &TensorFile,
    want: &TensorFile,
    device: &Device,
    label: &str,
) {
    for case in ["64", "96x64"] {
        let a = t4(inputs, &format!("a{case}"), device);
        let b = t4(inputs, &format!("b{case}"), device);
        let w = want.tensor(&format!("d{case}")).unwrap().data;
        let got = lpips
            .forward(a, b)
            .into_data()
            .convert::<f32>()
            .try_into_vec::<f32>()
            .unwrap();
        println!("{label} case {case}: ours {got:?} reference {w:?}");
        assert_eq!(got.len(), w.len(), "case {case}: one distance per pair");
        assert!(!got.is_empty());
        for (g, w) in got.iter().zip(&w) {
            assert!(
                (g - w).abs() <= 1e-4 + 1e-3 * w.abs(),
                "{label} case {case}: {g} vs {w}"
            );
        }
    }
}

#[test]
fn wrong_files_are_clear_errors() {
    let device = Device::flex();
    let dir = std::env::temp_dir().join(format!("dcae-lpips-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let junk = dir.join("junk.pth");
    std::fs::write(&junk, b"not a checkpoint").unwrap();
    let e = Lpips::load(&[junk], &device).unwrap_err().to_string();
    assert!(e.contains("junk.pth"), "{e}");
    let missing = dir.join("missing.pth");
    let e = Lpips::load(&[missing], &device).unwrap_err().to_string();
    assert!(e.contains("not found"), "{e}");
    // The fixture file is a safetensors file without VGG weights.
    let fixture =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("data/lpips_stlpips_vgg.safetensors");
    let e = Lpips::load(&[fixture], &device).unwrap_err().to_string();
    assert!(e.contains("VGG16 convolutions"), "{e}");
}

/// The standard LPIPS v0.1 path (max-pooling VGG16, torchvision `features.N` keys, LPIPS heads
/// in a second file) against the `lpips` 0.1.4 package run with the same 13 convolutions.
#[test]
fn standard_vgg_from_two_files_matches_the_lpips_package() {
    let device = Device::flex();
    let data = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("data");
    // torchvision's vgg16.features indices of the 13 convolutions, in order.
    let std_idx = [0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28];
    let st = read_any_tensors(&weights()).unwrap();
    let mut convs: Vec<(usize, String)> = st
        .keys()
        .filter(|k| k.starts_with("net.slice") && k.ends_with(".weight"))
        .map(|k| (k.split('.').nth(2).unwrap().parse().unwrap(), k.clone()))
        .collect();
    convs.sort();
    assert_eq!(convs.len(), 13);
    let mut renamed: Vec<(String, HostTensor)> = Vec::new();
    for ((_, k), i) in convs.iter().zip(std_idx) {
        let bias = k.replace(".weight", ".bias");
        renamed.push((format!("features.{i}.weight"), st[k].clone()));
        renamed.push((format!("features.{i}.bias"), st[&bias].clone()));
    }
    let dir = std::env::temp_dir().join(format!("dcae-lpips-std-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let backbone = dir.join("vgg16_features.safetensors");
    let refs: Vec<(&str, &HostTensor)> = renamed.iter().map(|(k, t)| (k.as_str(), t)).collect();
    write_tensors(&backbone, &refs, None).unwrap();

    let (lpips, src) = Lpips::load(
        &[backbone, data.join("lpips_v0.1_vgg_lin.safetensors")],
        &device,
    )
    .unwrap();
    assert_eq!(src.variant, LpipsVariant::Vgg);
    let inputs = TensorFile::open(&data.join("lpips_stlpips_vgg.safetensors")).unwrap();
    let want = TensorFile::open(&data.join("lpips_v0.1_vgg_reference.safetensors")).unwrap();
    check_cases(&lpips, &inputs, &want, &device, "standard");
    let _ = std::fs::remove_dir_all(&dir);
}
