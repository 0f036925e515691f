//! DC-AE conformance: every case folder under the fixture root (`../shared/fixtures/dcae`, or
//! `$DCAE_FIXTURES`), dispatched on its `config.json`, compared key by key (latent,
//! reconstruction and every recorded stage) with the reference implementation's outputs.
//!
//! Tolerance (fixtures README): max|err| <= 5e-4 * max(1, max|ref|) and rel-L2 <= 1e-4 in f32;
//! the reference's own f32-vs-f64 error is at most 3.7e-5, bugs give 1e-1 to 1.
//! The decoder runs on the stored `latent` so encoder and decoder errors stay separate.

use dcae::pipeline::conformance::{F32_TOL, HALF_KEYS, HALF_TOL, check_case, summary};
use dcae::{Backend, DcAe, Precision};
use dcae_conformance::{case_dirs, fixture_root};

fn run_all(backend: Backend, precision: Precision, tol: (f64, f64), only: &[&str]) {
    let root = fixture_root("DCAE_FIXTURES", "dcae");
    let cases = case_dirs(&root);
    assert!(
        !cases.is_empty(),
        "no fixture case (folder with config.json) under {}",
        root.display()
    );
    let device = backend.device().unwrap_or_else(|e| panic!("{e}"));
    let mut all = Vec::new();
    for dir in &cases {
        let name = dir.file_name().unwrap().to_string_lossy();
        match check_case(dir, &device, precision, tol, only) {
            Ok(r) => {
                println!(
                    "{}",
                    summary(&format!("{backend}/{precision:?}"), &name, &r)
                );
                all.extend(r.failures.into_iter().map(|f| format!("{name}: {f}")));
            }
            Err(e) => all.push(format!("{name}: {e}")),
        }
    }
    assert!(
        all.is_empty(),
        "{} mismatches:\n{}",
        all.len(),
        all.join("\n")
    );
}

#[test]
fn fixtures_cpu_f32() {
    run_all(Backend::Cpu, Precision::F32, F32_TOL, &[]);
}

#[test]
fn fixtures_wgpu_f32() {
    run_all(Backend::Wgpu, Precision::F32, F32_TOL, &[]);
}

/// Half precision: latent and reconstruction only, `HALF_TOL` (see its comment).
#[test]
fn fixtures_cpu_bf16() {
    run_all(Backend::Cpu, Precision::Bf16, HALF_TOL, HALF_KEYS);
}

/// bf16 on wgpu where the adapter has it. WGSL has no bf16 type, so wgpu adapters (lavapipe in
/// CI included) report no support; then loading must fail with the actionable message instead.
#[test]
fn fixtures_wgpu_bf16() {
    let device = Backend::Wgpu.device().unwrap_or_else(|e| panic!("{e}"));
    if device.supports_dtype(Precision::Bf16.dtype()) {
        run_all(Backend::Wgpu, Precision::Bf16, HALF_TOL, HALF_KEYS);
    } else {
        let case = &case_dirs(&fixture_root("DCAE_FIXTURES", "dcae"))[0];
        let err = DcAe::load(case, &device, Precision::Bf16)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("no Bf16 support") && err.contains("--precision f32"),
            "{err}"
        );
        println!("wgpu adapter has no bf16: checked the error path instead ({err})");
    }
}

#[test]
fn fixtures_wgpu_f16() {
    // Some Vulkan drivers have no shaderFloat16 (lavapipe on some of our CI machines): there
    // the loader must refuse F16 with its clear error, and there is nothing to compare.
    let device = Backend::Wgpu.device().unwrap_or_else(|e| panic!("{e}"));
    if !device.supports_dtype(Precision::F16.dtype()) {
        let root = fixture_root("DCAE_FIXTURES", "dcae");
        let dir = &case_dirs(&root)[0];
        let Err(err) = DcAe::load(dir, &device, Precision::F16) else {
            panic!("F16 load on a device without F16 must fail");
        };
        let err = err.to_string();
        assert!(err.contains("has no F16 support"), "{err}");
        eprintln!("fixtures_wgpu_f16: this wgpu device has no F16; only the refusal was checked");
        return;
    }
    run_all(Backend::Wgpu, Precision::F16, HALF_TOL, HALF_KEYS);
}

/// Every preset equals the official diffusers config transcribed in
/// `../shared/fixtures/dcae/official-configs.json` (parsed by the same config reader users hit).
#[test]
fn presets_match_official_configs() {
    let root = fixture_root("DCAE_FIXTURES", "dcae");
    let path = root.join("official-configs.json");
    let Ok(text) = std::fs::read_to_string(&path) else {
        panic!("{} not found", path.display());
    };
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let mut checked = 0;
    for group in [
        &v["checkpoints"],
        &v["not_in_conversion_script"]["checkpoints"],
    ] {
        for (name, entry) in group.as_object().unwrap() {
            let parsed = dcae::DcAeConfig::from_json_str(&entry["config"].to_string())
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            let preset =
                dcae::DcAeConfig::from_model_name(name).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(parsed, preset, "{name}");
            checked += 1;
        }
    }
    assert!(checked >= 11, "only {checked} official configs checked");
}
