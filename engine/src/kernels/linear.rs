//! A linear layer by its parameters' names in an arena (`y = x · W + b`, `x` `[rows, k]`, `W`
//! `[k, n]`): the forward product with its bias, and the backward's three products, over
//! [`matmul`] and [`sum_rows`] (their CPU references and tests are theirs; the layer's are the
//! models' gradient tests). Every model with named weights uses these two.

use super::matmul::{matmul, Matmul};
use super::sum_rows::sum_rows;
use crate::error::Result;
use crate::gpu::{Arena, Recording, Tensor};

/// The layer's sizes `(rows, k, n)`: W read as `[k, n]` (its last dimension against the rest:
/// `W_O` `[heads, d_head, d_model]` is `[heads · d_head, d_model]`), `x` as `[rows, k]` and `y`
/// (the output, or the gradient at it) as `[rows, n]`.
fn sizes(x: &Tensor<'_>, w: &Tensor<'_>, y: &Tensor<'_>) -> Result<(usize, usize, usize)> {
    let (k, n) = w.matrix();
    let rows = (x.len / k as u64) as u32;
    x.expect_matrix(rows, k)?;
    y.expect_matrix(rows, n)?;
    Ok((rows as usize, k as usize, n as usize))
}

/// Records `y = x · W + b` for the arena's tensors `w` and `b`.
pub async fn linear(
    rec: &mut Recording<'_>,
    params: &Arena,
    (w, b): (&str, &str),
    x: Tensor<'_>,
    y: Tensor<'_>,
) -> Result<()> {
    let (w, b) = (params.tensor(w)?, params.tensor(b)?);
    let (rows, k, n) = sizes(&x, &w, &y)?;
    b.expect(&[n as u32])?;
    let mm = Matmul {
        bias: Some(b.view),
        ..Matmul::new(x.view, w.view, y.view, (rows, n, k))
    };
    matmul(rec, &mm).await
}

/// A linear layer's backward: W's gradient `xᵀ · dy` and b's (column sums) into the gradient
/// arena (added to what is there with `accumulate`: a layer taken a chunk of rows at a time),
/// and the input's `dy · Wᵀ` into `dx`.
#[allow(clippy::too_many_arguments)]
pub async fn linear_backward(
    rec: &mut Recording<'_>,
    grads: &Arena,
    params: &Arena,
    (w, b): (&str, &str),
    x: Tensor<'_>,
    dy: Tensor<'_>,
    dx: Tensor<'_>,
    accumulate: bool,
) -> Result<()> {
    let (weight, dw) = (params.tensor(w)?, grads.tensor(w)?);
    let (rows, k, n) = sizes(&x, &weight, &dy)?;
    dw.expect(weight.dims())?;
    dx.expect_matrix(rows as u32, k as u32)?;
    let dw = Matmul {
        trans_a: true,
        accumulate,
        ..Matmul::new(x.view, dy.view, dw.view, (k, n, rows))
    };
    matmul(rec, &dw).await?;
    sum_rows(rec, dy, grads.tensor(b)?, accumulate).await?;
    let din = Matmul {
        trans_b: true,
        ..Matmul::new(dy.view, weight.view, dx.view, (rows, k, n))
    };
    matmul(rec, &din).await
}
