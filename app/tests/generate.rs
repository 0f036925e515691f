//! The Generate tab through egui_kittest, with tiny random networks: a class-conditional UViT
//! on a fixture DC-AE, and a tiny Sana pipeline (golden tokenizer, `gemma2-tiny` fixture
//! encoder, random transformer, fixture DC-AE). Start a job and see previews arrive, cancel
//! (running and queued), reorder the queue, finish, find the result in the gallery folder with
//! its settings, replay them through the engine for the same pixels, restore them from the
//! gallery and by dropping the PNG on the window; a snapshot of the tab.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use dcae::diffusion::class_cond::DiffusionModel;
use dcae::diffusion::sana::{SanaConfig, SanaModel};
use dcae::pipeline::generation::GenerationSettings;
use dcae_app::settings::{BackendChoice, Tab};
use dcae_app::tasks::TaskState;
use dcae_app::{Startup, Workbench};
use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;

fn shared() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared")
}

fn fixture_ae() -> PathBuf {
    shared().join("fixtures/dcae/f32c32-sana-96x128-b2")
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("dcae-app-gen-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("tmp dir");
    d
}

/// A random UViT (8 latent channels, 4x4 latent: 128x128 images through the fixture DC-AE).
fn write_uvit(dir: &Path) {
    let cfg = serde_json::json!({
        "kind": "uvit",
        "model_config": {"input_size": 4, "patch_size": 1, "in_channels": 8,
                          "hidden_size": 32, "depth": 2, "num_heads": 2},
        "scaling_factor": 0.5,
        "autoencoder": fixture_ae().to_string_lossy(),
    });
    DiffusionModel::write_random_folder(&cfg.to_string(), 7, dir).expect("random UViT");
}

fn copy(from: &Path, to: &Path) {
    std::fs::create_dir_all(to.parent().unwrap()).unwrap();
    std::fs::copy(from, to).unwrap();
}

/// A tiny Sana pipeline folder.
fn write_sana(dir: &Path) {
    let w = |p: &Path, t: &str| {
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, t).unwrap();
    };
    w(
        &dir.join("model_index.json"),
        r#"{"_class_name": "SanaPipeline", "_diffusers_version": "0.42.1"}"#,
    );
    w(
        &dir.join("scheduler/scheduler_config.json"),
        r#"{"_class_name": "DPMSolverMultistepScheduler", "flow_shift": 3.0,
            "use_flow_sigmas": true, "prediction_type": "flow_prediction"}"#,
    );
    copy(
        &PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/data/tokenizer/tokenizer.json"),
        &dir.join("tokenizer/tokenizer.json"),
    );
    let gemma = shared().join("fixtures/diffusion/gemma2-tiny");
    let cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(gemma.join("config.json")).unwrap()).unwrap();
    w(
        &dir.join("text_encoder/config.json"),
        &cfg["model_config"].to_string(),
    );
    copy(
        &gemma.join("model.safetensors"),
        &dir.join("text_encoder/model.safetensors"),
    );
    let sana = SanaConfig {
        in_channels: 8,
        out_channels: Some(8),
        num_attention_heads: 2,
        attention_head_dim: 32,
        num_layers: 2,
        num_cross_attention_heads: Some(2),
        cross_attention_head_dim: Some(32),
        cross_attention_dim: Some(64),
        caption_channels: 64,
        sample_size: 32,
        ..SanaConfig::default()
    };
    SanaModel::write_random_component(&sana, 11, &dir.join("transformer")).unwrap();
    copy(
        &fixture_ae().join("config.json"),
        &dir.join("vae/config.json"),
    );
    copy(
        &fixture_ae().join("model.safetensors"),
        &dir.join("vae/diffusion_pytorch_model.safetensors"),
    );
}

fn harness(startup: Startup) -> Harness<'static, Workbench> {
    Harness::builder()
        .with_size(egui::vec2(1200.0, 800.0))
        .with_max_steps(1000)
        .wgpu()
        .build_eframe(move |cc| Workbench::new(cc, startup).expect("app starts"))
}

/// Steps the UI until `done` holds (the UI keeps drawing meanwhile).
fn wait_for(h: &mut Harness<'static, Workbench>, what: &str, done: impl Fn(&Workbench) -> bool) {
    let t0 = Instant::now();
    loop {
        h.step();
        if done(h.state()) {
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(300), "timed out: {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
    h.run_steps(2);
}

fn idle(w: &Workbench) -> bool {
    !w.busy()
}

fn startup(gen_models: Vec<PathBuf>, gallery: &Path) -> Startup {
    Startup {
        no_default_model: true,
        no_samples: true,
        backend: Some(BackendChoice::Cpu),
        fresh_settings: true,
        hide_timings: true,
        gen_models,
        gallery: Some(gallery.to_path_buf()),
        tab: Some(Tab::Generate),
        ..Startup::default()
    }
}

fn errors(w: &Workbench) -> Vec<String> {
    w.messages
        .iter()
        .filter(|m| m.error)
        .map(|m| m.text.clone())
        .collect()
}

/// A file dropped on the window, as the windowing integration hands it to egui.
#[derive(Debug)]
struct DroppedPath(PathBuf);

impl egui::DroppedFile for DroppedPath {
    fn path(&self) -> &Path {
        &self.0
    }

    fn bytes(&self) -> Result<Vec<u8>, String> {
        std::fs::read(&self.0).map_err(|e| e.to_string())
    }
}

fn pixels(p: &Path) -> (u32, u32, Vec<u8>) {
    let img = image::open(p).unwrap().to_rgb8();
    (img.width(), img.height(), img.into_raw())
}

#[test]
fn class_conditional_previews_cancel_queue_gallery_restore_and_drop() {
    let dir = tmp("class");
    let model = dir.join("uvit");
    write_uvit(&model);
    let gallery = dir.join("gallery");
    let mut h = harness(startup(vec![model.clone()], &gallery));
    wait_for(&mut h, "model load", idle);
    assert!(errors(h.state()).is_empty(), "{:?}", errors(h.state()));
    // The model's facts are on screen: kind, autoencoder, latent shape.
    h.get_by_label_contains("class-conditional uvit");
    h.get_by_label_contains("DC-AE f32c8 · latent 8x4x4");
    h.snapshot("generate");

    // Run 1, by keyboard: two classes, a fixed seed, few steps.
    {
        let f = &mut h.state_mut().gen_tab.form;
        f.classes = vec![207, 281];
        f.seed = 5;
        f.seed_locked = true;
        f.steps = 6;
    }
    h.key_press_modifiers(egui::Modifiers::COMMAND, egui::Key::Enter);
    wait_for(&mut h, "first generation", |w| {
        !w.busy() && w.gen_tab.gallery.len() == 1
    });
    assert!(errors(h.state()).is_empty(), "{:?}", errors(h.state()));
    let job = *h.state().gen_tab.jobs.keys().next().unwrap();
    let previews = h.state().gen_tab.jobs[&job].previews;
    assert!(previews >= 2, "{previews} previews for 6 steps");
    let saved = h.state().gen_tab.gallery[0].path.clone();
    assert!(saved.starts_with(&gallery), "{}", saved.display());
    // Two 128x128 images side by side.
    let (w, hh, px) = pixels(&saved);
    assert_eq!((w, hh), (256, 128));

    // The PNG's settings replayed through the engine give the same pixels.
    let GenerationSettings::Class(s) = GenerationSettings::from_png(&saved).unwrap() else {
        panic!("class settings expected")
    };
    assert_eq!((s.classes.clone(), s.seed, s.steps), (vec![207, 281], 5, 6));
    let device = dcae::Backend::Cpu.device().unwrap();
    let mut loaded = dcae::pipeline::class_to_image::load(&s, &device).unwrap();
    let (imgs, z) = dcae::pipeline::class_to_image::run_with_latents(
        &mut loaded,
        &s,
        &mut dcae::task::Silent,
        &dcae::Cancel::new(),
    )
    .unwrap();
    let (rgb, _, _) = dcae::pipeline::class_to_image::grid(&imgs, s.cols);
    assert_eq!(rgb, px, "replay differs from the app's result");
    // The first image's final latent is kept for the inspector: the replay's, unscaled.
    let lat = h.state().gen_tab.gallery[0]
        .latent
        .clone()
        .expect("the result keeps its latent");
    assert_eq!((lat.channels, lat.height, lat.width), (8, 4, 4));
    assert_eq!(lat.data, z[..128].to_vec());
    h.get_by_role_and_label(egui::accesskit::Role::Button, "Latent")
        .click();
    h.run_steps(2);
    h.get_by_label_contains("latent 8x4x4 = 128 values");
    h.get_by_role_and_label(egui::accesskit::Role::Button, "Image")
        .click();
    h.run_steps(2);
    assert!(!h.state().gen_tab.show_latent);
    // The preview map was fitted once and kept beside the gallery for the next load.
    let maps = std::fs::read_dir(dir.join("preview-maps"))
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(maps, 1, "one cached preview map");

    // A long job is cancelled within a step of the first preview; a queued one never runs;
    // the queue reorders.
    {
        let f = &mut h.state_mut().gen_tab.form;
        f.steps = 1000;
    }
    h.state_mut().start_generation();
    h.state_mut().gen_tab.form.steps = 3;
    h.state_mut().start_generation();
    h.state_mut().gen_tab.form.seed = 6;
    h.state_mut().start_generation();
    let queue = h.state().gen_tab.queue.clone();
    assert_eq!(queue.len(), 2);
    h.state_mut().gen_tab.move_queued(queue[1], true);
    assert_eq!(h.state().gen_tab.queue, vec![queue[1], queue[0]]);
    h.state_mut().cancel_job(queue[0]);
    assert_eq!(h.state().gen_tab.queue, vec![queue[1]]);
    let long = h.state().gen_tab.running.expect("the long job runs");
    // A full decode of the estimate on demand (what the "Decode now" button asks; asked at
    // once, not after a preview, so a fast sampler cannot finish first), shown beside the
    // live preview.
    h.state_mut().decode_now(long);
    wait_for(&mut h, "a preview of the long job", |w| {
        w.gen_tab.jobs[&long].previews > 0
    });
    wait_for(&mut h, "the decoded estimate", |w| {
        w.gen_tab.jobs[&long].decoded.is_some()
    });
    let (step, img, _) = h.state().gen_tab.jobs[&long].decoded.clone().unwrap();
    assert!((1..1000).contains(&step), "decoded at step {step}");
    assert_eq!(img.dimensions(), (128, 128));
    assert!(!h.state().gen_tab.jobs[&long].decoding());
    h.get_by_label_contains(&format!("decoded at step {step}"));
    h.get_by_role_and_label(egui::accesskit::Role::Button, "Decode now");
    assert!(errors(h.state()).is_empty(), "{:?}", errors(h.state()));
    // The Cancel button of the running job.
    h.get_by_role_and_label(egui::accesskit::Role::Button, "Cancel")
        .click();
    wait_for(&mut h, "cancel and the queued job", |w| {
        !w.busy() && w.gen_tab.gallery.len() == 2
    });
    let st = |w: &Workbench, j| matches!(w.task_state(j), Some(TaskState::Failed(e)) if e.is_cancelled());
    assert!(st(h.state(), long), "the long job was not cancelled");
    assert!(st(h.state(), queue[0]), "the cancelled queued job ran");
    let stopped_after = h.state().gen_tab.jobs[&long].previews;
    assert!(
        stopped_after < 1000,
        "all {stopped_after} steps ran despite the cancel"
    );
    let files = std::fs::read_dir(&gallery).unwrap().count();
    assert_eq!(files, 2, "one file per finished job");

    // Restore from the gallery: the first result (the newest is shown after a run).
    h.state_mut().gen_tab.form.seed = 99;
    h.state_mut().gen_tab.form.classes = vec![1];
    let first = h
        .state()
        .gen_tab
        .gallery
        .iter()
        .position(|g| g.path == saved)
        .unwrap();
    let ctx = h.ctx.clone();
    h.state_mut()
        .apply(&ctx, dcae_app::command::Action::RestoreGallery(first));
    h.run_steps(2);
    let f = &h.state().gen_tab.form;
    assert_eq!((f.seed, f.classes.clone(), f.steps), (5, vec![207, 281], 6));

    // Drop the PNG (copied elsewhere) on the window: the same settings come back.
    let elsewhere = dir.join("dropped.png");
    std::fs::copy(&saved, &elsewhere).unwrap();
    h.state_mut().gen_tab.form.seed = 42;
    h.state_mut().settings.tab = Tab::Reconstruct;
    h.input_mut()
        .dropped_files
        .push(std::sync::Arc::new(DroppedPath(elsewhere.clone())));
    wait_for(&mut h, "drop", |w| w.gen_tab.form.seed == 5);
    assert_eq!(h.state().settings.tab, Tab::Generate);
    assert_eq!(h.state().gen_tab.form.classes, vec![207, 281]);

    // A second app on the same gallery folder finds both results.
    drop(h);
    let mut h2 = harness(startup(vec![model], &gallery));
    wait_for(&mut h2, "gallery scan", |w| {
        idle(w) && w.gen_tab.gallery.len() == 2
    });
    h2.state_mut().gen_tab.search = "tabby".into();
    assert_eq!(h2.state().gen_tab.gallery_matches().len(), 2);
    h2.state_mut().gen_tab.search = "no such prompt".into();
    assert!(h2.state().gen_tab.gallery_matches().is_empty());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn text_to_image_prompt_counter_preview_and_result() {
    let dir = tmp("text");
    let model = dir.join("sana");
    write_sana(&model);
    let gallery = dir.join("gallery");
    let mut h = harness(startup(vec![model], &gallery));
    wait_for(&mut h, "pipeline load", idle);
    assert!(errors(h.state()).is_empty(), "{:?}", errors(h.state()));
    h.get_by_label_contains("text-to-image (Sana)");
    {
        let f = &mut h.state_mut().gen_tab.form;
        f.prompt = "A red fox in the snow".into();
        f.width = 96;
        f.height = 64;
        f.binning = false;
        f.steps = 3;
        f.seed = 7;
        f.seed_locked = true;
    }
    h.run_steps(2);
    // The live token counter (the prompt's tokens of 298 with the instruction prefix).
    h.get_by_label_contains("/ 298 tokens");
    h.state_mut().start_generation();
    wait_for(&mut h, "generation", |w| {
        !w.busy() && w.gen_tab.gallery.len() == 1
    });
    assert!(errors(h.state()).is_empty(), "{:?}", errors(h.state()));
    let job = *h.state().gen_tab.jobs.keys().next().unwrap();
    assert!(h.state().gen_tab.jobs[&job].previews >= 2);
    let saved = h.state().gen_tab.gallery[0].path.clone();
    let (w, hh, _) = pixels(&saved);
    assert_eq!((w, hh), (96, 64));
    let GenerationSettings::Text(s) = GenerationSettings::from_png(&saved).unwrap() else {
        panic!("text settings expected")
    };
    assert_eq!(
        (s.prompt.as_str(), s.seed, s.binning),
        ("A red fox in the snow", 7, false)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn compare_models_side_by_side_and_step_the_seed_deck() {
    let dir = tmp("compare");
    let (a, b) = (dir.join("uvit-a"), dir.join("uvit-b"));
    write_uvit(&a);
    write_uvit(&b);
    let gallery = dir.join("gallery");
    let mut h = harness(startup(vec![a, b], &gallery));
    wait_for(&mut h, "model loads", idle);
    assert!(errors(h.state()).is_empty(), "{:?}", errors(h.state()));
    {
        let f = &mut h.state_mut().gen_tab.form;
        f.classes = vec![207];
        f.seed = 11;
        f.seed_locked = true;
        f.steps = 3;
    }
    h.get_by_role_and_label(egui::accesskit::Role::Button, "Compare models")
        .click();
    wait_for(&mut h, "both runs", |w| {
        !w.busy() && w.gen_tab.gallery.len() == 2
    });
    assert!(errors(h.state()).is_empty(), "{:?}", errors(h.state()));
    let g = &h.state().gen_tab.gallery;
    assert!(g[0].group.is_some() && g[0].group == g[1].group);
    for it in g {
        let c = it.caption.clone().unwrap_or_default();
        assert!(c.contains("latent 8x4x4 (16 tokens)"), "{c}");
        assert_eq!(it.settings.seed(), 11);
    }
    // Both captions are on screen, side by side.
    assert_eq!(
        h.query_all_by_label_contains("latent 8x4x4 (16 tokens)")
            .count(),
        2
    );

    // The seed deck: add both results, step with the arrow keys (Generate tab).
    let ctx = h.ctx.clone();
    for i in 0..2 {
        h.state_mut()
            .apply(&ctx, dcae_app::command::Action::RestoreGallery(i));
        h.state_mut()
            .apply(&ctx, dcae_app::command::Action::AddToDeck);
    }
    assert_eq!(h.state().settings.deck.len(), 2);
    h.state_mut().gen_tab.form.seed = 0;
    h.key_press(egui::Key::ArrowRight);
    h.run_steps(2);
    assert_eq!(h.state().gen_tab.deck_pos, Some(0));
    assert_eq!(h.state().gen_tab.form.seed, 11);
    assert_eq!(h.state().gen_tab.shown, Some(0));
    h.key_press(egui::Key::ArrowLeft);
    h.run_steps(2);
    assert_eq!(h.state().gen_tab.deck_pos, Some(1));
    let _ = std::fs::remove_dir_all(&dir);
}
