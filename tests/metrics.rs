//! PSNR and SSIM against scikit-image on fixed image pairs (`tests/data/ssim_*.png`, values in
//! `tests/data/ssim_reference.json`, made by `tests/tools/make_ssim_reference.py`).

use std::path::PathBuf;

use dcae::io::image::load_image;
use dcae::metrics::{psnr_u8, ssim_rgb8};

fn data() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("data")
}

fn rgb8(name: &str) -> (Vec<u8>, usize, usize) {
    let (img, _) = load_image(&data().join(format!("ssim_{name}.png"))).unwrap();
    let rgb = img.to_rgb8();
    (rgb.into_raw(), img.width, img.height)
}

#[test]
fn ssim_and_psnr_match_scikit_image() {
    let text = std::fs::read_to_string(data().join("ssim_reference.json")).unwrap();
    let reference: serde_json::Value = serde_json::from_str(&text).unwrap();
    let pairs = reference["pairs"].as_object().unwrap();
    assert_eq!(pairs.len(), 3);
    let (a, w, h) = rgb8("a");
    for (pair, want) in pairs {
        let (_, other) = pair.split_once('_').unwrap();
        let (b, bw, bh) = rgb8(other);
        assert_eq!((bw, bh), (w, h));
        let ssim = ssim_rgb8(&a, &b, w, h).unwrap();
        let want_ssim = want["ssim"].as_f64().unwrap();
        println!("{pair}: ssim ours {ssim:.12} scikit-image {want_ssim:.12}");
        // Both sum the same f64 terms in another order: agreement to 1e-9.
        assert!(
            (ssim - want_ssim).abs() < 1e-9,
            "{pair}: {ssim} vs {want_ssim}"
        );
        if let Some(want_psnr) = want["psnr"].as_f64() {
            let psnr = psnr_u8(&a, &b);
            assert!(
                (psnr - want_psnr).abs() < 1e-9,
                "{pair}: {psnr} vs {want_psnr}"
            );
        }
    }
}
