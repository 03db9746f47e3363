//! The MLP's activations forward and backward (host of `shaders/activation.wgsl`): exact GeLU,
//! GPT-2's tanh GeLU and SoLU (`x · softmax(x)` over each row, TransformerLens's `hook_mid`).
//! [`activation_ref`] and [`activation_backward_ref`] are the CPU references, which the
//! transformer's CPU passes use too.

use super::{params, Kernel};
use crate::error::Result;
use crate::gpu::{Recording, Tensor};

const ACTIVATION_WGSL: &str = include_str!("../../../shaders/activation.wgsl");

/// Which activation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Act {
    /// `x Φ(x)`, PyTorch's exact `F.gelu`.
    Gelu,
    /// GPT-2's tanh approximation.
    GeluNew,
    /// `x · softmax(x)` over each row.
    Solu,
}

impl Act {
    fn entry(self, backward: bool) -> &'static str {
        match (self, backward) {
            (Act::Gelu, false) => "gelu_forward",
            (Act::Gelu, true) => "gelu_backward",
            (Act::GeluNew, false) => "gelu_new_forward",
            (Act::GeluNew, true) => "gelu_new_backward",
            (Act::Solu, false) => "solu_forward",
            (Act::Solu, true) => "solu_backward",
        }
    }
}

/// Records `out = act(pre)` over the rows of `pre` (SoLU's softmax is over its last axis; the
/// backward when `grad` is given: `out` = the gradient at `pre` from the gradient `grad` at
/// the output).
pub async fn activation(
    rec: &mut Recording<'_>,
    act: Act,
    pre: Tensor<'_>,
    grad: Option<Tensor<'_>>,
    out: Tensor<'_>,
) -> Result<()> {
    let gpu = &rec.gpu().clone();
    let (r, w) = pre.matrix();
    let n = pre.len as u32;
    out.expect_matrix(r, w)?;
    if let Some(g) = grad {
        g.expect_matrix(r, w)?;
    }
    // The forward reads no gradient; `pre` fills its read-only slot.
    let storage = vec![pre.view, grad.unwrap_or(pre).view, out.view];
    let kern = Kernel::new(gpu, "activation", "", ACTIVATION_WGSL, storage, &[]).await?;
    let groups = match act {
        Act::Solu => (r as u64).div_ceil(super::seg_rows(gpu)),
        _ => (n as u64).div_ceil(256),
    };
    kern.dispatch(rec, act.entry(grad.is_some()), params(&[n, w]), groups)
        .await
}

/// PyTorch's exact GeLU.
pub fn gelu(x: f32) -> f32 {
    let x = x as f64;
    (0.5 * x * (1.0 + libm::erf(x / std::f64::consts::SQRT_2))) as f32
}

/// GPT-2's GeLU (TransformerLens's `gelu_new`).
pub fn gelu_new(x: f32) -> f32 {
    let x = x as f64;
    let c = (2.0 / std::f64::consts::PI).sqrt();
    (0.5 * x * (1.0 + (c * (x + 0.044715 * x * x * x)).tanh())) as f32
}

fn gelu_grad(x: f32) -> f32 {
    let x = x as f64;
    let cdf = 0.5 * (1.0 + libm::erf(x / std::f64::consts::SQRT_2));
    let pdf = (-0.5 * x * x).exp() / (2.0 * std::f64::consts::PI).sqrt();
    (cdf + x * pdf) as f32
}

fn gelu_new_grad(x: f32) -> f32 {
    let x = x as f64;
    let c = (2.0 / std::f64::consts::PI).sqrt();
    let t = (c * (x + 0.044715 * x * x * x)).tanh();
    let du = c * (1.0 + 3.0 * 0.044715 * x * x);
    (0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * du) as f32
}

/// A row's softmax.
fn softmax(row: &[f32]) -> Vec<f32> {
    let max = row.iter().fold(f32::NEG_INFINITY, |a, &s| a.max(s));
    let e: Vec<f32> = row.iter().map(|v| (v - max).exp()).collect();
    let sum: f32 = e.iter().sum();
    e.into_iter().map(|v| v / sum).collect()
}

/// CPU reference of the forward over rows of `width`.
pub fn activation_ref(act: Act, pre: &[f32], width: usize) -> Vec<f32> {
    match act {
        Act::Gelu => pre.iter().map(|&x| gelu(x)).collect(),
        Act::GeluNew => pre.iter().map(|&x| gelu_new(x)).collect(),
        Act::Solu => pre
            .chunks_exact(width)
            .flat_map(|row| {
                let s = softmax(row);
                row.iter().zip(s).map(|(x, s)| x * s).collect::<Vec<_>>()
            })
            .collect(),
    }
}

/// CPU reference of the backward: the gradient at `pre` from `grad` at the output.
pub fn activation_backward_ref(act: Act, pre: &[f32], grad: &[f32], width: usize) -> Vec<f32> {
    match act {
        Act::Gelu => pre
            .iter()
            .zip(grad)
            .map(|(x, g)| g * gelu_grad(*x))
            .collect(),
        Act::GeluNew => pre
            .iter()
            .zip(grad)
            .map(|(x, g)| g * gelu_new_grad(*x))
            .collect(),
        Act::Solu => pre
            .chunks_exact(width)
            .zip(grad.chunks_exact(width))
            .flat_map(|(row, g)| {
                let s = softmax(row);
                // mid = x · s: dx_j = s_j (g_j (1 + x_j) − Σ_i g_i x_i s_i).
                let dot: f32 = (0..width).map(|i| g[i] * row[i] * s[i]).sum();
                (0..width)
                    .map(|j| s[j] * (g[j] * (1.0 + row[j]) - dot))
                    .collect::<Vec<_>>()
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_data::{record, t, values};
    use super::*;
    use crate::gpu::Gpu;
    use crate::testing::assert_close;

    #[test]
    fn gelus_match_pytorch() {
        // F.gelu(tensor([-3., -1., 0., 0.5, 2.])) and F.gelu(..., approximate="tanh").
        let xs = [-3.0f32, -1.0, 0.0, 0.5, 2.0];
        let exact = [-0.004_050_23, -0.158_655_26, 0.0, 0.345_731_23, 1.954_499_7];
        let tanh = [-0.003_637_43, -0.158_808, 0.0, 0.345_714, 1.954_597_7];
        for ((x, e), t) in xs.iter().zip(exact).zip(tanh) {
            assert!((gelu(*x) - e).abs() < 1e-6, "gelu({x}) = {}", gelu(*x));
            assert!(
                (gelu_new(*x) - t).abs() < 1e-5,
                "gelu_new({x}) = {}",
                gelu_new(*x)
            );
        }
    }

    #[test]
    fn reference_backwards_match_finite_differences() {
        let width = 7;
        let pre: Vec<f32> = values(1, 3 * width).iter().map(|v| 3.0 * v).collect();
        let g = values(2, 3 * width);
        for act in [Act::Gelu, Act::GeluNew, Act::Solu] {
            let back = activation_backward_ref(act, &pre, &g, width);
            let loss = |p: &[f32]| -> f64 {
                let y = activation_ref(act, p, width);
                y.iter()
                    .zip(&g)
                    .map(|(a, b)| (*a as f64) * (*b as f64))
                    .sum()
            };
            for i in 0..pre.len() {
                let eps = 1e-2;
                let (mut up, mut down) = (pre.clone(), pre.clone());
                up[i] += eps;
                down[i] -= eps;
                let fd = ((loss(&up) - loss(&down)) / (2.0 * eps as f64)) as f32;
                assert!(
                    (fd - back[i]).abs() < 1e-3 + 0.01 * fd.abs(),
                    "{act:?}[{i}]: {} vs {fd}",
                    back[i]
                );
            }
        }
    }

    /// f32 exp and the erf approximation against f64 references: 2e-6 absolute plus 1e-5
    /// relative for GeLU; SoLU's rows sum in another order.
    async fn forward_and_backward(gpu: &Gpu) {
        for (rows, width) in [(1, 1), (3, 7), (2, 300), (257, 24)] {
            let pre: Vec<f32> = values(3, rows * width).iter().map(|v| 6.0 * v).collect();
            let g = values(4, rows * width);
            let bp = gpu.storage_from("pre", &pre).unwrap();
            let bg = gpu.storage_from("grad", &g).unwrap();
            for act in [Act::Gelu, Act::GeluNew, Act::Solu] {
                let y = gpu.storage_zeroed::<f32>("y", rows * width).unwrap();
                let dx = gpu.storage_zeroed::<f32>("dx", rows * width).unwrap();
                record(gpu, async |rec: &mut Recording<'_>| {
                    let shape = [rows, width];
                    let (p, grad) = (t(&bp, "pre", &shape), t(&bg, "grad", &shape));
                    activation(rec, act, p, None, t(&y, "y", &shape)).await?;
                    activation(rec, act, p, Some(grad), t(&dx, "dx", &shape)).await
                })
                .await;
                let what = format!("{act:?} {rows} × {width}");
                let got_y: Vec<f32> = gpu.read(&y, rows * width).await.unwrap();
                let got_dx: Vec<f32> = gpu.read(&dx, rows * width).await.unwrap();
                assert_close(&what, &got_y, &activation_ref(act, &pre, width), 2e-6, 1e-5);
                let want = activation_backward_ref(act, &pre, &g, width);
                assert_close(&format!("{what} backward"), &got_dx, &want, 1e-5, 1e-4);
            }
        }
    }
    crate::gpu_rows_test!(gpu_activations_match_reference, forward_and_backward);
}
