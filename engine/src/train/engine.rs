//! Where a run trains: the GPU or the CPU reference, as the user asked (auto, gpu, cpu), and
//! why. The page's worker and the CLI settle it here for every lab, so "auto" means the same
//! everywhere and names its reason.

use crate::gpu::Gpu;
use serde::{Deserialize, Serialize};

/// What the user asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EngineChoice {
    /// The GPU on a hardware adapter. On a software adapter (lavapipe, SwiftShader), or with no
    /// adapter, the CPU reference when the lab allows it for this config (see
    /// [`Request::cpu_faster_on_software`]), since there it is faster.
    #[default]
    Auto,
    /// The GPU, whatever the adapter.
    Gpu,
    /// The CPU reference.
    Cpu,
}

impl EngineChoice {
    /// Every choice, as menus and `--help` list them.
    pub const ALL: [EngineChoice; 3] = [EngineChoice::Auto, EngineChoice::Gpu, EngineChoice::Cpu];

    /// The choice's name in links, menus and the CLI.
    pub fn name(self) -> &'static str {
        match self {
            EngineChoice::Auto => "auto",
            EngineChoice::Gpu => "gpu",
            EngineChoice::Cpu => "cpu",
        }
    }
}

/// A lab's request for one run.
#[derive(Debug, Clone)]
pub struct Request {
    /// What the user asked for.
    pub choice: EngineChoice,
    /// `None` when the CPU reference can take the config; otherwise why not, as the start of a
    /// sentence that [`place`] finishes with what the user can do instead.
    pub cpu_too_large: Option<String>,
    /// Whether auto picks the CPU reference on a software adapter (the lab measured it faster
    /// there at the sizes the CPU takes).
    pub cpu_faster_on_software: bool,
    /// What the GPU is called in messages: "WebGPU" in the browser, "a GPU adapter" natively.
    pub gpu_name: &'static str,
}

/// Where the run trains.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    /// On the GPU (else the CPU reference).
    pub gpu: bool,
    /// What runs it, as the page and the CLI show it: the adapter's name, or the CPU reference
    /// and, when auto chose it over an adapter, why.
    pub runs_on: String,
}

/// An adapter opened with the name the page and the CLI show for it, or why none opened.
pub type Adapter = Result<(Gpu, String), String>;

impl Placement {
    /// The device to train on, when the placement is the GPU.
    pub fn chosen<'a>(&self, adapter: &'a Adapter) -> Option<&'a Gpu> {
        match adapter {
            Ok((g, _)) if self.gpu => Some(g),
            _ => None,
        }
    }
}

/// Settles where the run trains, given the adapter (or why there is none). Fails, naming the
/// reason and what to change, when what was asked cannot run.
pub fn place(req: &Request, adapter: &Adapter) -> Result<Placement, String> {
    let gpu = adapter
        .as_ref()
        .map(|(g, n)| (g, n.as_str()))
        .map_err(String::as_str);
    let cpu = |runs_on: &str| {
        Ok(Placement {
            gpu: false,
            runs_on: runs_on.to_string(),
        })
    };
    let on_gpu = |name: &str| {
        Ok(Placement {
            gpu: true,
            runs_on: name.to_string(),
        })
    };
    let fits = req.cpu_too_large.is_none();
    let too_large = |suffix: String| {
        Err(format!(
            "{}{suffix}",
            req.cpu_too_large.as_deref().unwrap_or_default()
        ))
    };
    match (req.choice, gpu) {
        (EngineChoice::Cpu, _) if !fits => too_large(format!(", or train on {}", req.gpu_name)),
        (EngineChoice::Cpu, _) => cpu("CPU reference"),
        (EngineChoice::Gpu, Err(why)) => Err(format!("{} is not available: {why}", req.gpu_name)),
        (EngineChoice::Gpu, Ok((_, name))) => on_gpu(name),
        // A software adapter runs the kernels on the CPU, one dispatch at a time: where the lab
        // measured the CPU reference faster, it takes every config it can.
        (EngineChoice::Auto, Ok((g, _)))
            if g.is_software() && fits && req.cpu_faster_on_software =>
        {
            cpu("CPU reference (faster than this software adapter)")
        }
        (EngineChoice::Auto, Ok((_, name))) => on_gpu(name),
        (EngineChoice::Auto, Err(why)) if !fits => too_large(format!(
            ", or {} ({why})",
            if req.gpu_name == "WebGPU" {
                "open the page in a browser with WebGPU".to_string()
            } else {
                format!("run it where {} is available", req.gpu_name)
            }
        )),
        (EngineChoice::Auto, Err(_)) => cpu("CPU reference"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(choice: EngineChoice, too_large: bool) -> Request {
        Request {
            choice,
            cpu_too_large: too_large.then(|| "this run needs WebGPU: it is large".to_string()),
            cpu_faster_on_software: true,
            gpu_name: "WebGPU",
        }
    }

    #[test]
    fn without_an_adapter_auto_falls_back_to_the_cpu_or_says_why_not() {
        let p = place(
            &request(EngineChoice::Auto, false),
            &Err("no adapter".into()),
        )
        .unwrap();
        assert_eq!((p.gpu, p.runs_on.as_str()), (false, "CPU reference"));
        let e = place(
            &request(EngineChoice::Auto, true),
            &Err("no adapter".into()),
        )
        .unwrap_err();
        assert_eq!(
            e,
            "this run needs WebGPU: it is large, or open the page in a browser with WebGPU (no adapter)"
        );
        let e = place(
            &request(EngineChoice::Gpu, false),
            &Err("no adapter".into()),
        )
        .unwrap_err();
        assert_eq!(e, "WebGPU is not available: no adapter");
        let e = place(&request(EngineChoice::Cpu, true), &Err("no adapter".into())).unwrap_err();
        assert_eq!(e, "this run needs WebGPU: it is large, or train on WebGPU");
    }

    async fn auto_on_this_adapter(gpu: &Gpu) {
        let with = |choice, too_large, faster| {
            let req = Request {
                cpu_faster_on_software: faster,
                ..request(choice, too_large)
            };
            place(&req, &Ok((gpu.clone(), "the adapter".into()))).unwrap()
        };
        let auto = with(EngineChoice::Auto, false, true);
        if gpu.is_software() {
            // lavapipe and SwiftShader: the CPU reference, saying why.
            assert!(!auto.gpu && auto.runs_on.contains("faster than this software adapter"));
        } else {
            assert_eq!((auto.gpu, auto.runs_on.as_str()), (true, "the adapter"));
        }
        // Too large for the CPU, or a lab whose GPU path wins on software adapters: the GPU.
        assert!(with(EngineChoice::Auto, true, true).gpu);
        assert!(with(EngineChoice::Auto, false, false).gpu);
        assert_eq!(with(EngineChoice::Gpu, false, true).runs_on, "the adapter");
        assert!(!with(EngineChoice::Cpu, false, false).gpu);
    }
    crate::gpu_test!(
        gpu_auto_prefers_the_cpu_only_on_software_adapters,
        auto_on_this_adapter
    );
}
