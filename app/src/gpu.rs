//! One wgpu device per GPU: the window's device is made able to run the models, and the worker
//! computes on it (`dcae::backend::share_wgpu`) instead of opening a second device on the same
//! GPU (two queues, two memory pools, every result copied between them through the host).

use eframe::egui_wgpu::{RenderState, WgpuSetup, WgpuSetupCreateNew};
use eframe::wgpu;

/// egui's wgpu setup with a device Burn can compute on too: the adapter's own features and
/// limits, requested the way Burn requests its own device (egui asks for wgpu's defaults, too
/// low for Burn's kernels).
pub fn window_setup() -> WgpuSetup {
    let mut create = WgpuSetupCreateNew::without_display_handle();
    create.device_descriptor =
        std::sync::Arc::new(|adapter: &wgpu::Adapter| wgpu::DeviceDescriptor {
            label: Some("dcae-app device (window and models)"),
            required_features: adapter
                .features()
                .difference(wgpu::Features::MAPPABLE_PRIMARY_BUFFERS),
            required_limits: adapter.limits(),
            memory_hints: wgpu::MemoryHints::MemoryUsage,
            ..Default::default()
        });
    WgpuSetup::CreateNew(create)
}

/// Lends the window's device to the models' wgpu backend, on a hardware GPU. A software
/// rasteriser (lavapipe) keeps them apart: a model there runs for seconds per call, and the
/// window, sharing its queue, could not present or resize meanwhile (wgpu gives up waiting
/// for the device to go idle). `DCAE_SHARE_WGPU=1` shares any device (the tests' way to run
/// the shared path without a GPU). Registering allocates nothing until a model uses it.
pub fn lend_window_device(rs: &RenderState) {
    let info = rs.adapter.get_info();
    let forced = std::env::var_os("DCAE_SHARE_WGPU").is_some_and(|v| v == "1");
    if info.device_type == wgpu::DeviceType::Cpu && !forced {
        return;
    }
    let setup = dcae::backend::WgpuSetup {
        instance: rs.instance.clone(),
        adapter: rs.adapter.clone(),
        device: rs.device.clone(),
        queue: rs.queue.clone(),
        backend: info.backend,
    };
    if let Err(e) = dcae::backend::share_wgpu(setup) {
        eprintln!(
            "note: the window's GPU device cannot run the models ({e}); wgpu models get a device of their own"
        );
    }
}
