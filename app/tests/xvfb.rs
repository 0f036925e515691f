//! The real app binary in a virtual X display (tools/app-screenshot.sh): it must open, show the
//! embedded sample photo with the embedded default model's reconstruction, save a screenshot
//! and exit on its own. CI installs xvfb (README set-up command).

use std::path::PathBuf;
use std::process::Command;

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
    let mut colours: Vec<u32> = img
        .pixels()
        .map(|p| u32::from(p[0]) << 16 | u32::from(p[1]) << 8 | u32::from(p[2]))
        .collect();
    colours.sort_unstable();
    colours.dedup();
    assert!(
        colours.len() > 5000,
        "only {} colours on screen",
        colours.len()
    );
    if let Ok(keep) = std::env::var("DCAE_KEEP_SCREENSHOT") {
        std::fs::copy(&out, keep).expect("copy screenshot");
    }
    let _ = std::fs::remove_file(&out);
}
