//! A linear layer by its parameters' names in an arena (`y = x · W + b`, `x` `[rows, k]`, `W`
//! `[k, n]`): the forward product with its bias, and the backward's three products, over
//! [`matmul`] and [`sum_rows`] (their CPU references and tests are theirs; the layer's are the
//! models' gradient tests). Every model with named weights uses these two.

use super::matmul::{matmul, Matmul};
use super::sum_rows::sum_rows;
use crate::error::Result;
use crate::gpu::{Arena, Recording, View};

/// Records `y = x · W + b` for the arena's tensors `w` and `b`.
pub async fn linear(
    rec: &mut Recording<'_>,
    params: &Arena,
    (w, b): (&str, &str),
    x: View<'_>,
    y: View<'_>,
    (rows, k, n): (usize, usize, usize),
) -> Result<()> {
    let mm = Matmul {
        bias: Some(params.view(b)?),
        ..Matmul::new(x, params.view(w)?, y, (rows, n, k))
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
    x: View<'_>,
    dy: View<'_>,
    dx: View<'_>,
    (rows, k, n): (usize, usize, usize),
    accumulate: bool,
) -> Result<()> {
    let dw = Matmul {
        trans_a: true,
        accumulate,
        ..Matmul::new(x, dy, grads.view(w)?, (k, n, rows))
    };
    matmul(rec, &dw).await?;
    sum_rows(rec, dy, grads.view(b)?, (rows, n), accumulate).await?;
    let din = Matmul {
        trans_b: true,
        ..Matmul::new(dy, params.view(w)?, dx, (rows, k, n))
    };
    matmul(rec, &din).await
}
