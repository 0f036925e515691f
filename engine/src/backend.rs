//! Backend selection: a runtime [`Device`] for `cpu`, `wgpu` or `cuda`.

use std::sync::OnceLock;

use burn::tensor::Device;

use crate::error::{Error, Result};

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
            Backend::Wgpu => {
                // The wgpu runtime registers once per process; later calls reuse the device.
                static WGPU: OnceLock<std::result::Result<Device, String>> = OnceLock::new();
                WGPU.get_or_init(|| wgpu_device(None))
                    .clone()
                    .map_err(wgpu_err)
            }
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

#[cfg(feature = "cuda")]
fn cuda_device_at(index: usize) -> Result<Device> {
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
