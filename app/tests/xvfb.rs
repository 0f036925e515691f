//! The real app binary in a virtual X display (tools/app-screenshot.sh): it must open, show the
//! embedded sample photo with the embedded default models' reconstructions, save a screenshot
//! and exit on its own. CI installs xvfb (README set-up command).

use std::path::PathBuf;
use std::process::Command;

fn distinct_colours(img: &image::RgbImage) -> usize {
    let mut colours: Vec<u32> = img
        .pixels()
        .map(|p| u32::from(p[0]) << 16 | u32::from(p[1]) << 8 | u32::from(p[2]))
        .collect();
    colours.sort_unstable();
    colours.dedup();
    colours.len()
}

#[test]
fn real_app_under_xvfb_saves_a_screenshot() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let out = std::env::temp_dir().join(format!("dcae-app-screenshot-{}.png", std::process::id()));
    let _ = std::fs::remove_file(&out);
    let status = Command::new(root.join("tools/app-screenshot.sh"))
        .arg(&out)
        .args(["--backend", "cpu"])
        .env("DCAE_APP_BIN", env!("CARGO_BIN_EXE_dcae-app"))
        .current_dir(&root)
        .status()
        .expect("running tools/app-screenshot.sh");
    assert!(
        status.success(),
        "app-screenshot.sh failed: {status} (is xvfb installed?)"
    );
    let img = image::open(&out).expect("screenshot written").to_rgb8();
    assert_eq!(img.dimensions(), (1600, 1000));
    // A photo and its reconstruction are on screen: many distinct colours, not an empty UI.
    let colours = distinct_colours(&img);
    assert!(colours > 5000, "only {colours} colours on screen");
    if let Ok(keep) = std::env::var("DCAE_KEEP_SCREENSHOT") {
        std::fs::copy(&out, keep).expect("copy screenshot");
    }
    let _ = std::fs::remove_file(&out);
}

/// The Generate tab of the real app: a tiny random UViT on a fixture DC-AE generates once on
/// start (`--generate`); the screenshot shows the form, the result and the gallery strip.
#[test]
fn real_app_generate_tab_under_xvfb() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let dir = std::env::temp_dir().join(format!("dcae-app-gen-shot-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let model = dir.join("uvit");
    let ae = root.join("../shared/fixtures/dcae/f32c32-sana-96x128-b2");
    let cfg = serde_json::json!({
        "kind": "uvit",
        "model_config": {"input_size": 4, "patch_size": 1, "in_channels": 8,
                          "hidden_size": 32, "depth": 2, "num_heads": 2},
        "scaling_factor": 0.5,
        "autoencoder": ae.to_string_lossy(),
    });
    dcae::diffusion::class_cond::DiffusionModel::write_random_folder(&cfg.to_string(), 7, &model)
        .expect("random UViT");
    let out = dir.join("generate.png");
    let status = Command::new(root.join("tools/app-screenshot.sh"))
        .arg(&out)
        .args([
            "--backend",
            "cpu",
            "--no-default-model",
            "--tab",
            "generate",
            "--generate",
        ])
        .arg("--gen-model")
        .arg(&model)
        .arg("--gallery")
        .arg(dir.join("gallery"))
        .env("DCAE_APP_BIN", env!("CARGO_BIN_EXE_dcae-app"))
        .current_dir(&root)
        .status()
        .expect("running tools/app-screenshot.sh");
    assert!(status.success(), "app-screenshot.sh failed: {status}");
    let img = image::open(&out).expect("screenshot written").to_rgb8();
    assert_eq!(img.dimensions(), (1600, 1000));
    // The generated image went to the gallery folder with its settings.
    let saved: Vec<_> = std::fs::read_dir(dir.join("gallery"))
        .expect("gallery folder")
        .filter_map(|e| e.ok())
        .collect();
    assert_eq!(saved.len(), 1, "one generated image in the gallery");
    let colours = distinct_colours(&img);
    assert!(colours > 1000, "only {colours} colours on screen");
    if let Ok(keep) = std::env::var("DCAE_KEEP_GENERATE_SCREENSHOT") {
        std::fs::copy(&out, keep).expect("copy screenshot");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
