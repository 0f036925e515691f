//! Backend selection: a runtime [`Device`] for `cpu`, `wgpu` or `cuda`.

use std::sync::OnceLock;

use burn::tensor::Device;
/// The wgpu handles a front end can lend Burn ([`share_wgpu`]); `wgpu` is the exact crate they
/// come from (the one egui-wgpu uses too).
pub use burn::tensor::wgpu::{WgpuSetup, wgpu};

use crate::error::{Error, Result};

/// The process's wgpu device: adopted from the front end ([`share_wgpu`]) or made by Burn on
/// first use. The wgpu runtime registers once per process; later calls reuse the device.
static WGPU: OnceLock<std::result::Result<Device, String>> = OnceLock::new();
/// Whether [`WGPU`] is the front end's device.
static WGPU_SHARED: OnceLock<()> = OnceLock::new();

/// Runs `Backend::Wgpu` on a wgpu device the caller already has (the app's window device),
/// instead of opening a second device on the same GPU: one queue, one memory pool, and tensors
/// a renderer on that device could read without a copy to the host. Call it before the first
/// `Backend::Wgpu.device()`. `Ok(false)`: Burn's own device already exists. An error (the
/// device cannot run Burn's kernels, e.g. it was made with too low limits) leaves nothing
/// registered, so Burn makes its own device on first use.
pub fn share_wgpu(setup: WgpuSetup) -> std::result::Result<bool, String> {
    if WGPU.get().is_some() {
        return Ok(false);
    }
    let init = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        Device::wgpu_options().setup(setup).init()
    }));
    match init {
        Ok(Ok(d)) => {
            let adopted = WGPU.set(Ok(d)).is_ok();
            if adopted {
                let _ = WGPU_SHARED.set(());
            }
            Ok(adopted)
        }
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("registering the shared wgpu device panicked".into()),
    }
}

/// Whether `Backend::Wgpu` runs on a device lent by [`share_wgpu`].
pub fn wgpu_is_shared() -> bool {
    WGPU_SHARED.get().is_some()
}

/// Compute backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Backend {
    /// Burn's pure-Rust CPU backend (`burn-flex`: gemm + rayon + SIMD).
    Cpu,
    /// wgpu: Vulkan, Metal or DX12, chosen at runtime.
    #[default]
    Wgpu,
    /// CUDA (needs the `cuda` cargo feature).
    Cuda,
    /// The deprecated `burn-ndarray` CPU backend (needs the `ndarray` feature; for comparison).
    Ndarray,
}

impl std::str::FromStr for Backend {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "cpu" => Ok(Backend::Cpu),
            "wgpu" | "gpu" | "vulkan" => Ok(Backend::Wgpu),
            "cuda" => Ok(Backend::Cuda),
            "ndarray" => Ok(Backend::Ndarray),
            o => Err(format!("unknown backend `{o}` (cpu, wgpu, cuda)")),
        }
    }
}

impl std::fmt::Display for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Backend::Cpu => "cpu",
            Backend::Wgpu => "wgpu",
            Backend::Cuda => "cuda",
            Backend::Ndarray => "ndarray",
        })
    }
}

serde_by_name!(Backend);

impl Backend {
    /// Initialises the device, with an actionable error when it is not available.
    pub fn device(self) -> Result<Device> {
        match self {
            Backend::Cpu => Ok(Device::flex()),
            Backend::Wgpu => WGPU
                .get_or_init(|| wgpu_device(None))
                .clone()
                .map_err(wgpu_err),
            Backend::Cuda => cuda_device(),
            Backend::Ndarray => ndarray_device(),
        }
    }

    /// `n` devices of this backend for data-parallel training: GPUs 0..n (CUDA device
    /// indices; wgpu discrete adapters), or `n` replicas on the one CPU device (no speed-up
    /// there; it runs the same code path, which is how the tests check it).
    pub fn devices(self, n: usize) -> Result<Vec<Device>> {
        if n == 0 {
            return Err(Error::Input("devices must be at least 1".into()));
        }
        if n == 1 {
            return Ok(vec![self.device()?]);
        }
        match self {
            Backend::Cpu | Backend::Ndarray => Ok(vec![self.device()?; n]),
            Backend::Cuda => (0..n).map(cuda_device_at).collect(),
            Backend::Wgpu => (0..n)
                .map(|i| wgpu_device(Some(i)).map_err(wgpu_err))
                .collect(),
        }
    }
}

/// A wgpu device: the default adapter, or discrete GPU `index`. wgpu panics deep inside
/// adapter selection on some failures; any panic becomes an error the user can act on.
fn wgpu_device(index: Option<usize>) -> std::result::Result<Device, String> {
    let label = index.map_or(String::new(), |i| format!("discrete GPU {i}: "));
    let init = std::panic::catch_unwind(|| {
        let opts = Device::wgpu_options();
        match index {
            Some(i) => opts
                .device_kind(burn::tensor::DeviceKind::DiscreteGpu(i))
                .init(),
            None => opts.init(),
        }
    });
    match init {
        Ok(Ok(d)) => Ok(d),
        Ok(Err(e)) => Err(format!("{label}{e}")),
        Err(_) => Err(format!("{label}adapter initialisation panicked")),
    }
}

fn wgpu_err(message: String) -> Error {
    Error::Backend {
        backend: "wgpu".into(),
        message: format!(
            "{message}; no usable GPU adapter (on Linux without a GPU install mesa-vulkan-drivers for the lavapipe software driver) or use --backend cpu"
        ),
    }
}

#[cfg(feature = "cuda")]
fn cuda_device() -> Result<Device> {
    cuda_device_at(0)
}

/// Whether the NVIDIA driver's library can be loaded: without it cudarc panics on a runtime
/// thread (a backtrace before our error), so it is looked for first.
#[cfg(all(feature = "cuda", unix))]
fn cuda_driver_present() -> bool {
    ["libcuda.so.1", "libcuda.so"].iter().any(|name| {
        let Ok(c) = std::ffi::CString::new(*name) else {
            return false;
        };
        // SAFETY: dlopen with a valid C string; the handle is closed at once.
        unsafe {
            let h = libc::dlopen(c.as_ptr(), libc::RTLD_LAZY | libc::RTLD_LOCAL);
            if h.is_null() {
                return false;
            }
            libc::dlclose(h);
            true
        }
    })
}

/// Elsewhere cudarc reports a missing driver itself.
#[cfg(all(feature = "cuda", not(unix)))]
fn cuda_driver_present() -> bool {
    true
}

#[cfg(feature = "cuda")]
fn cuda_device_at(index: usize) -> Result<Device> {
    if !cuda_driver_present() {
        return Err(Error::Backend {
            backend: "cuda".into(),
            message: "the NVIDIA driver library (libcuda.so.1) is not installed or not on the library path (nvidia-smi checks the driver); use --backend wgpu or cpu".into(),
        });
    }
    let init = std::panic::catch_unwind(|| {
        let d = Device::cuda(index);
        // Touch the device so a missing driver fails here, not in the first model op.
        let _ = burn::tensor::Tensor::<1>::zeros([1], &d).into_data();
        d
    });
    init.map_err(|_| Error::Backend {
        backend: "cuda".into(),
        message: format!("CUDA device {index} could not be initialised (driver or GPU missing)"),
    })
}

#[cfg(not(feature = "cuda"))]
fn cuda_device_at(_index: usize) -> Result<Device> {
    cuda_device()
}

#[cfg(not(feature = "cuda"))]
fn cuda_device() -> Result<Device> {
    Err(Error::Backend {
        backend: "cuda".into(),
        message: "this build has no CUDA support; rebuild with `--features cuda`".into(),
    })
}

#[cfg(feature = "ndarray")]
#[allow(deprecated)] // measured against flex on purpose
fn ndarray_device() -> Result<Device> {
    Ok(Device::ndarray())
}

#[cfg(not(feature = "ndarray"))]
fn ndarray_device() -> Result<Device> {
    Err(Error::Backend {
        backend: "ndarray".into(),
        message: "this build has no ndarray backend; rebuild with `--features dcae-cli/ndarray`"
            .into(),
    })
}
